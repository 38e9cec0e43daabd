"""Helpers shared by the tests that drive the live service."""

import asyncio
import time

import httpx

from multistage.api import UNFINISHED


def post_concurrently(base_url: str, path: str, body: dict, count: int) -> list[httpx.Response]:
    """``count`` POSTs in flight at once, as many clients would send them."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            return await asyncio.gather(*(client.post(path, json=body) for _ in range(count)))

    return asyncio.run(burst())


def wait_until_ended(http: httpx.Client, url: str, timeout_s: float = 90) -> httpx.Response:
    """Long-poll ``url`` until its ticket has ended (or ``timeout_s`` passes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = http.get(url, params={"wait": 10})
        if response.json()["status"] not in UNFINISHED or time.monotonic() > deadline:
            return response


def fill_saturated_queue(base_url: str, example: dict, count: int = 40) -> list[str]:
    """Tickets queued behind the saturated app's slow stage two, oldest first."""
    responses = post_concurrently(base_url, "/saturated/v1/predict", example, count)
    return [r.json()["ticket"] for r in responses if r.json()["ticket"]]


def cancel_all(http: httpx.Client, prefix: str, tickets: list[str]) -> None:
    """Clear a backlog a test made, so the next test starts with an idle stage two."""
    for ticket in tickets:
        assert http.delete(f"{prefix}/v1/predictions/{ticket}").status_code in (200, 409)
