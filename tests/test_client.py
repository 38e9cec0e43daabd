"""The Python client against the live local service, sync and async."""

import asyncio

import pytest
from support import post_concurrently

from multistage_client import AsyncClient, Client, ServiceError, StageTwoFailed

OVERLOAD_BURST = 40


@pytest.fixture
def client(serve_url):
    with Client(serve_url) as client:
        yield client


def test_sync_predict_then_result(client, http, example):
    answer = client.predict(example)
    assert answer.stage_one.label in ("ok", "defect")
    prediction = answer.result(timeout=20)
    stored = http.get(f"/v1/predictions/{answer.ticket}").json()["result"]
    assert prediction.model_dump(mode="json") == stored


def test_sync_predict_many_keeps_order_and_per_record_errors(client, example):
    outcomes = client.predict_many([example, {**example, "supplier": "nobody"}, example])
    assert isinstance(outcomes[1], ServiceError)
    assert outcomes[1].status == 422
    assert outcomes[1].body.errors[0].field == "supplier"
    assert [o.result(timeout=20).label for o in (outcomes[0], outcomes[2])]


def test_sync_ticket_that_did_not_complete_raises_with_its_reason(client, example):
    answer = client.predict(example, deadline_s=0.000001)
    with pytest.raises(StageTwoFailed) as failed:
        answer.result(timeout=20)
    assert (failed.value.status, failed.value.error.error) == ("expired", "deadline_passed")


def test_sync_bad_request_raises_service_error(client, example):
    with pytest.raises(ServiceError) as error:
        client.predict({**example, "image": "not base64!"})
    assert error.value.status == 422
    assert error.value.body.errors[0].field == "image"


def test_async_predict_await_and_failures(serve_url, example):
    async def scenario():
        async with AsyncClient(serve_url) as client:
            answer = await client.predict(example)
            prediction = await answer
            assert prediction.model.name == "defect-cnn"
            many = await client.predict_many([example, example])
            results = [await answer.result(20) for answer in many]
            assert [r.model.name for r in results] == ["defect-cnn"] * 2
            failing = await client.predict(example, deadline_s=0.000001)
            with pytest.raises(StageTwoFailed):
                await failing

    asyncio.run(scenario())


async def _burst(client: AsyncClient, example: dict) -> list:
    return await asyncio.gather(
        *(client.predict(example) for _ in range(OVERLOAD_BURST)), return_exceptions=True
    )


def test_overload_is_503_with_retry_after_and_the_client_retries(serve_url, example):
    base = f"{serve_url}/overloaded"

    raw_burst = post_concurrently(base, "/v1/predict", example, OVERLOAD_BURST)
    shed = [r for r in raw_burst if r.status_code == 503]
    assert shed, "a burst against a one-at-a-time stage one shed nothing"
    assert shed[0].headers["retry-after"] == "1"
    assert shed[0].json()["error"] == "overloaded"

    async def without_retries() -> list:
        async with AsyncClient(base, max_retries=0) as client:
            return await _burst(client, example)

    errors = [o for o in asyncio.run(without_retries()) if isinstance(o, Exception)]
    assert errors and all(isinstance(e, ServiceError) and e.status == 503 for e in errors)
    assert errors[0].retry_after_s == 1.0

    async def with_retries() -> list:
        async with AsyncClient(base, max_retries=30) as client:
            return await _burst(client, example)

    outcomes = asyncio.run(with_retries())
    assert not [o for o in outcomes if isinstance(o, Exception)]
