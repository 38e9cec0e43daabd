"""POST /v1/predict/batch: one vectorised stage one, one ticket per record, errors per record."""

import pytest

from demo.data import generate


def test_batch_results_equal_per_record_results(http):
    data = generate(6, seed=5)
    records = [data.record(i) for i in range(len(data))]
    batch = http.post("/v1/predict/batch", json={"records": records})
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [r["index"] for r in results] == list(range(len(records)))

    for record, item in zip(records, results, strict=True):
        single = http.post("/v1/predict", json=record).json()
        assert item["stage_one"]["label"] == single["stage_one"]["label"]
        assert list(item["stage_one"]["scores"].values()) == pytest.approx(
            list(single["stage_one"]["scores"].values()), abs=1e-6
        )
        batched_two = http.get(item["stage_two"]["url"], params={"wait": 20}).json()
        single_two = http.get(single["stage_two"]["url"], params={"wait": 20}).json()
        assert list(batched_two["result"]["scores"].values()) == pytest.approx(
            list(single_two["result"]["scores"].values()), abs=1e-4
        )
    assert len({item["ticket"] for item in results}) == len(records)


def test_bad_records_get_their_own_errors_and_the_good_are_served(http, example):
    records = [example, {**example, "shift": "graveyard"}, "not a record", example]
    results = http.post("/v1/predict/batch", json={"records": records}).json()["results"]

    assert results[1]["error"]["errors"][0]["field"] == "shift"
    assert results[2]["error"]["errors"][0]["field"] == "body"
    assert results[1]["ticket"] is None and results[2]["stage_one"] is None
    for good in (results[0], results[3]):
        assert good["error"] is None
        view = http.get(good["stage_two"]["url"], params={"wait": 20}).json()
        assert view["status"] == "completed"


def test_a_number_past_its_fields_bound_is_refused_alone(http, example):
    # Finite JSON, past what the sensor reports (and past float32): never reaches a model.
    records = [example, {**example, "temperature_c": 1e308}, example]
    results = http.post("/v1/predict/batch", json={"records": records}).json()["results"]
    assert results[1]["error"]["errors"][0]["field"] == "temperature_c"
    views = [http.get(results[i]["stage_two"]["url"], params={"wait": 20}).json() for i in (0, 2)]
    assert [v["status"] for v in views] == ["completed", "completed"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b'{"records": [', 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b'{"records": []}', 422, "records"),
        (b'{"records": "x"}', 422, "records"),
    ],
)
def test_malformed_batches_are_refused_whole(http, body, status, field):
    response = http.post(
        "/v1/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["errors"][0]["field"] == field


def test_too_many_records_is_422(http, example):
    response = http.post("/v1/predict/batch", json={"records": [example] * 65})
    assert response.status_code == 422
    assert "at most 64" in response.json()["message"]
