"""Helpers shared by the tests that drive the live service."""

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from multistage_client import paths
from multistage_client.models import UNFINISHED


def wait_for_condition(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Until ``condition()`` is true; one that raises counts as false until ``timeout``
    seconds pass, then the last error (or a timeout) is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
            failure: Exception = TimeoutError(f"not true after {timeout} s: {condition}")
        except Exception as error:  # noqa: BLE001 - retried: the service may still be starting
            failure = error
        if time.monotonic() > deadline:
            raise failure
        time.sleep(0.1)


def concurrently(
    base_url: str, method: str, paths: list[str], body: dict | None = None
) -> list[httpx.Response]:
    """One request per path, all in flight at once, as many clients would send them."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            return await asyncio.gather(*(client.request(method, p, json=body) for p in paths))

    return asyncio.run(burst())


def post_concurrently(base_url: str, path: str, body: dict, count: int) -> list[httpx.Response]:
    """``count`` POSTs in flight at once."""
    return concurrently(base_url, "POST", [path] * count, body)


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


# A metric name in PromQL: Ray exports every metric with a ``ray_`` prefix, so this skips
# functions (rate, sum, histogram_quantile), label names and Grafana's ``$`` variables;
# quoted label values are blanked first, so a value that looks like a name is not one.
_METRIC_NAME = re.compile(r"(?<![\w:$])ray_[A-Za-z0-9_:]*")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def dashboard_panels(path: Path) -> list[dict]:
    """Every panel of a Grafana dashboard, rows and those nested in collapsed rows included."""
    panels = []
    for panel in json.loads(path.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_metric_names(path: Path) -> set[str]:
    """The series names (``_total``, ``_bucket`` as written) the dashboard's queries read."""
    return {
        name
        for panel in dashboard_panels(path)
        for target in panel.get("targets", [])
        for name in _METRIC_NAME.findall(_QUOTED.sub('""', target.get("expr", "")))
    }


def wait_for_two_ingress_replicas(http: httpx.Client, timeout_s: float = 90) -> None:
    """Until both of the session's ingress replicas answer: after a test killed one, Serve's
    replacement must be serving before later tests count on two."""
    answered: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(answered) < 2:
        assert time.monotonic() < deadline, f"only {answered} answered"
        with contextlib.suppress(httpx.TransportError):
            answered.add(http.get(paths.MODELS).headers[paths.INGRESS_REPLICA_HEADER])
        time.sleep(0.1)
