"""One record the model raises on fails alone; its batch-mates still get predictions.

No demo model raises on demand, so this test deploys the heavy deployment beside the
session's apps with a module that refuses records with an absurd first feature.
"""

import copy

import numpy as np
import torch
from ray import serve
from ray.serve import Application

from demo.net import build_model
from deployments.heavy import HeavyModel
from multistage.api import ModelInfo
from multistage.records import Record
from multistage.schema import RecordSchema

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


def test_a_record_the_model_raises_on_fails_alone(
    schema, artifacts, service_config, redeploy, tmp_path
):
    weights = tmp_path / "refuses.pt"
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
    try:
        together = _predict_together([_record(schema, 40.0), _record(schema, 90.0)])
        assert [p.batch_size for p in together] == [2, 2]  # sent together, batched together

        good, bad, also_good = _predict_together(
            [_record(schema, 40.0), _record(schema, 1e9), _record(schema, 90.0)]
        )
        assert isinstance(bad, ValueError) and "absurd" in str(bad)
        # The batch of three raised; each record was then run on its own.
        assert (good.batch_size, also_good.batch_size) == (1, 1)
        assert good.scores == together[0].scores
    finally:
        redeploy(service_config)
