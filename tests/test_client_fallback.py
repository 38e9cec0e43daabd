"""The client's fallback from the event stream to long-polling.

No live setup breaks the stream on demand, so this test stands in for a proxy that
buffers or rewrites event streams, at the HTTP layer.
"""

import asyncio

import httpx

from multistage.api import _TICKET_EXAMPLE
from multistage.client import AsyncClient

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
