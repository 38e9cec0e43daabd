"""One record the model raises on, or whose deadline passed, fails alone; its batch- and
call-mates still get predictions.

No demo model raises on demand, so this test deploys the heavy deployment beside the
session's apps with a module that refuses records with an absurd first feature.
"""

import copy
import time

import numpy as np
import pytest
import torch
from ray import serve
from ray.serve import Application

from demo.net import build_model
from deployments.heavy import HeavyModel, StageTwoError
from multistage.models.records import Record
from multistage.models.schema import RecordSchema
from multistage_client.models import ErrorBody, ModelInfo, Prediction

APP = "isolation"


class RefusesAbsurdRecords(torch.nn.Module):
    def __init__(self, schema: RecordSchema) -> None:
        super().__init__()
        self.net = build_model(schema, width=8)

    def forward(self, numeric, categorical, **heavy):
        if bool((numeric.abs() > 1e5).any()):
            raise ValueError("an absurd record")
        return self.net(numeric, categorical, **heavy)


def heavy_only(args: dict) -> Application:
    return HeavyModel.bind(
        factory="tests.test_heavy_isolation:RefusesAbsurdRecords",
        weights=args["weights"],
        factory_kwargs={},
        info=ModelInfo(name="refuses", version="0"),
        schema=RecordSchema.load(args["schema_path"]),
    )


def _record(schema: RecordSchema, first_numeric: float) -> Record:
    spec = schema.image
    features = np.zeros(len(schema.fields), dtype=np.float32)
    features[schema.numeric_positions[0]] = first_numeric
    image = np.zeros((spec.height, spec.width, spec.channels), dtype=np.uint8)
    texts = {t.field: np.zeros(t.max_tokens, dtype=np.int64) for t in schema.texts}
    return Record(features=features, image=image, texts=texts)


def _predict_together(records: list[Record]) -> list:
    handle = serve.get_deployment_handle("HeavyModel", app_name=APP)
    responses = [handle.predict.remote(record) for record in records]
    outcomes = []
    for response in responses:
        try:
            outcomes.append(response.result(timeout_s=30))
        except Exception as error:  # noqa: BLE001 - the outcome under test
            outcomes.append(error)
    return outcomes


@pytest.fixture(scope="module")
def isolation_app(schema, artifacts, service_config, redeploy, tmp_path_factory):
    weights = tmp_path_factory.mktemp("isolation") / "refuses.pt"
    torch.save(RefusesAbsurdRecords(schema).state_dict(), weights)
    config = copy.deepcopy(service_config)
    config["applications"].append(
        {
            "name": APP,
            "route_prefix": None,
            "import_path": "tests.test_heavy_isolation:heavy_only",
            "args": {"weights": str(weights), "schema_path": str(artifacts / "schema.json")},
            "deployments": [
                {
                    "name": "HeavyModel",
                    "num_replicas": 1,
                    "ray_actor_options": {"num_cpus": 0.1},
                    # A long wait: records sent together share one batch.
                    "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.5},
                }
            ],
        }
    )
    redeploy(config)
    yield
    redeploy(service_config)


def test_a_record_the_model_raises_on_fails_alone(schema, isolation_app):
    together = _predict_together([_record(schema, 40.0), _record(schema, 90.0)])
    assert [p.batch_size for p in together] == [2, 2]  # sent together, batched together

    good, bad, also_good = _predict_together(
        [_record(schema, 40.0), _record(schema, 1e9), _record(schema, 90.0)]
    )
    # Its error a code and a message: the model's exception stays in the replica's log.
    assert isinstance(bad, StageTwoError) and bad.error.error == "model_failed"
    # The batch of three raised; each record was then run on its own.
    assert (good.batch_size, also_good.batch_size) == (1, 1)
    assert good.scores == together[0].scores


def test_a_passed_deadline_in_a_call_fails_none_of_its_call_mates(schema, isolation_app):
    handle = serve.get_deployment_handle("HeavyModel", app_name=APP)
    records = [_record(schema, 40.0), _record(schema, 60.0), _record(schema, 90.0)]
    passed = time.time() - 1
    outcomes = handle.predict_many.remote(records, [None, passed, None]).result(timeout_s=30)
    first, skipped, last = outcomes
    assert isinstance(first, Prediction) and isinstance(last, Prediction)
    assert skipped == ErrorBody(
        error="deadline_passed", message="the deadline passed before stage two started"
    )
