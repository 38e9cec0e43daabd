"""A text-only stage two, served by config and schema alone: no code changes.

Training writes the note-only variant of stage two beside the main one
(``heavy_note.pt`` and ``schema_note.json``, the schema without the image); an app of this
module's own serves it, and its records carry no photo.
"""

import copy

import pytest
from conftest import deployment_options
from support import wait_until_ended

PREFIX = "/textonly"


@pytest.fixture(scope="module")
def text_only(serve_url, service_config, artifacts, redeploy, example):
    config = copy.deepcopy(service_config)
    app = copy.deepcopy(config["applications"][0])
    app.update(name="textonly", route_prefix=PREFIX)
    app["args"]["schema_path"] = str(artifacts / "schema_note.json")
    app["args"]["heavy"]["weights"] = str(artifacts / "heavy_note.pt")
    deployment_options(app, "Ingress")["num_replicas"] = 1
    heavy = deployment_options(app, "HeavyModel")
    heavy["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
    config["applications"].append(app)
    redeploy(config)
    try:
        yield {k: v for k, v in example.items() if k != "image"}
    finally:
        redeploy(service_config)


def test_a_text_only_model_serves_records_without_a_photo(text_only, http):
    answer = http.post(f"{PREFIX}/v1/predict", json=text_only)
    assert answer.status_code == 200, answer.text
    view = wait_until_ended(http, answer.json()["stage_two"]["url"]).json()
    assert view["status"] == "completed", view
    assert view["result"]["modalities"] == ["tabular", "note"]

    with_photo = http.post(f"{PREFIX}/v1/predict", json={**text_only, "image": "AAAA"})
    assert with_photo.status_code == 422
    assert [e["field"] for e in with_photo.json()["errors"]] == ["image"]
    models = http.get(f"{PREFIX}/v1/models").json()
    assert "image" not in models["input_schema"]["properties"]
    assert "note" in models["input_schema"]["properties"]
