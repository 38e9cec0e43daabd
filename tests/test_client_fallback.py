"""The client against broken transports: fallback from the event stream to long-polling,
retried reads.

No live setup breaks a stream, or answers from a dying replica, on demand: these tests
stand in for such a proxy or replica at the HTTP layer.
"""

import asyncio

import httpx

from multistage_client import AsyncClient
from multistage_client.models import _TICKET_EXAMPLE

TICKET = _TICKET_EXAMPLE["ticket"]


def _buffering_proxy(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/events"):
        return httpx.Response(200, json={"not": "an event stream"})
    assert request.url.params["wait"]
    return httpx.Response(200, json=_TICKET_EXAMPLE)


def test_result_falls_back_to_long_poll_when_the_stream_is_unusable():
    async def fetch():
        transport = httpx.MockTransport(_buffering_proxy)
        async with AsyncClient("http://service", transport=transport) as client:
            return await client.result(TICKET, timeout=5)

    prediction = asyncio.run(fetch())
    assert prediction.label == _TICKET_EXAMPLE["result"]["label"]


def test_reads_retry_an_answer_from_a_dead_replica():
    answers = iter([httpx.Response(500, text="Internal Server Error")])

    def dying_replica(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, json={"not": "an event stream"})
        return next(answers, None) or httpx.Response(200, json=_TICKET_EXAMPLE)

    async def fetch():
        transport = httpx.MockTransport(dying_replica)
        async with AsyncClient("http://service", transport=transport, backoff_s=0) as client:
            return await client.result(TICKET, timeout=5)

    assert asyncio.run(fetch()).label == _TICKET_EXAMPLE["result"]["label"]
