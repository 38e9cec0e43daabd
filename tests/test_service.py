"""Both stages end to end over real HTTP, against the models' own offline predictions."""

import json

import numpy as np
import pytest
import torch
from support import concurrently

from demo.data import generate
from multistage.models.io import (
    file_version,
    heavy_inputs,
    load_booster,
    load_heavy_module,
    xgboost_probabilities,
)
from multistage.models.records import RecordParser
from multistage_client.models import _TICKET_EXAMPLE


def test_both_stages_equal_offline_predictions(http, artifacts, schema):
    data = generate(8, seed=99)
    bodies = [data.record(i) for i in range(len(data))]
    parser = RecordParser(schema)
    records = [parser.parse(json.dumps(body).encode()) for body in bodies]
    features = np.stack([r.features for r in records])
    images = np.stack([r.image for r in records])
    notes = {"note": np.stack([r.texts["note"] for r in records])}
    booster = load_booster(artifacts / "tabular.ubj")
    offline_one = xgboost_probabilities(booster, features)
    net = load_heavy_module("demo.net:build_model", artifacts / "heavy.pt", schema, {})
    inputs = heavy_inputs(features, images, notes, schema, torch.device("cpu"))
    with torch.inference_mode():
        offline_two = torch.softmax(net(**inputs), dim=1)

    responses = [http.post("/v1/predict", json=body) for body in bodies]
    assert [r.status_code for r in responses] == [200] * len(bodies)
    for i, response in enumerate(responses):
        answer = response.json()
        assert answer["stage_two"]["status"] == "pending"
        stage_one = answer["stage_one"]
        assert list(stage_one["scores"].values()) == pytest.approx(offline_one[i], abs=1e-5)
        assert stage_one["label"] == schema.classes[int(offline_one[i].argmax())]

        fetched = http.get(answer["stage_two"]["url"], params={"wait": 20})
        assert fetched.status_code == 200, fetched.text
        view = fetched.json()
        assert view["status"] == "completed"
        assert view["ticket"] == answer["ticket"]
        assert list(view["result"]["scores"].values()) == pytest.approx(
            offline_two[i].numpy(), abs=1e-4
        )
        assert view["result"]["model"]["name"] == "defect-cnn"
        assert view["result"]["modalities"] == ["tabular", "image", "note"]
        assert stage_one["modalities"] is None  # stage one never sees the photo or the note


def test_pending_ticket_answers_202_with_retry_after(http, example):
    ticket = http.post("/saturated/v1/predict", json=example).json()["ticket"]
    # Through the saturated app, stage two takes long enough to still be unfinished.
    response = http.get(f"/saturated/v1/predictions/{ticket}")
    assert response.status_code == 202
    assert response.headers["retry-after"] == "1"
    assert response.json()["status"] in ("pending", "running")


def test_long_poll_returns_within_its_wait(http, example):
    ticket = http.post("/saturated/v1/predict", json=example).json()["ticket"]
    response = http.get(f"/saturated/v1/predictions/{ticket}", params={"wait": 0.3})
    assert response.status_code in (200, 202)
    assert response.elapsed.total_seconds() < 5


# The second has the shape of a real id, but this service did not sign it.
@pytest.mark.parametrize("ticket", ["never-issued", _TICKET_EXAMPLE["ticket"]])
def test_unknown_ticket_is_404(http, ticket):
    response = http.get(f"/v1/predictions/{ticket}")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_ticket"


def test_healthz_reports_every_deployment(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["deployments"]) == {"Ingress", "TicketStore", "HeavyModel"}


def test_a_burst_of_health_checks_is_all_answered(serve_url):
    # Answered from the replica's last reading (one controller call a second: tests/test_health.py).
    answers = concurrently(serve_url, "GET", ["/healthz"] * 50)
    assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "ok")}


def test_models_endpoint_names_versions_and_a_working_example(http, artifacts):
    models = http.get("/v1/models").json()
    assert models["stage_one"]["version"] == file_version(artifacts / "tabular.ubj")
    assert models["stage_two"]["version"] == file_version(artifacts / "heavy.pt")
    assert models["classes"] == ["ok", "defect"]
    assert "temperature_c" in models["input_schema"]["properties"]
    assert http.post("/v1/predict", json=models["example_request"]).status_code == 200


def test_openapi_documents_predict_with_the_example(http, schema):
    document = http.get("/openapi.json").json()
    body = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"] == schema.example
    assert set(body["schema"]["required"]) == {f.name for f in schema.fields} | {"image", "note"}
    assert "/v1/predictions/{ticket}" in document["paths"]


def test_openapi_gives_every_endpoint_an_example(http):
    document = http.get("/openapi.json").json()
    components = document["components"]["schemas"]

    def has_example(content: dict) -> bool:
        for media in content.values():
            schema = media.get("schema", {})
            referenced = components.get(schema.get("$ref", "").rsplit("/", 1)[-1], {})
            if "example" in media or "examples" in schema or "examples" in referenced:
                return True
        return False

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"].get("200", {}).get("content", {})
            request = operation.get("requestBody", {}).get("content", {})
            assert has_example(ok) or has_example(request), f"{method.upper()} {path}"
