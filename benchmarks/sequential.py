"""Sequential requests from one client: latency side by side, and CPU per request.

Targets take turns in rounds, so drift on a shared machine falls on all alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from benchmarks.cpu_split import cpu_ms_per_request
from benchmarks.report import percentiles

WARMUP = 20
ROUNDS = 10


def latency(targets: dict[str, str], example: dict, requests: int) -> dict[str, dict]:
    """Each target's client-side latency (percentiles, ms) over ``requests`` POSTs."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    with httpx.Client(timeout=30) as client:
        for url in targets.values():  # warm connections and replicas
            timed_posts(client, url, example, WARMUP)
        for _ in range(ROUNDS):
            for name, url in targets.items():
                samples[name] += timed_posts(client, url, example, requests // ROUNDS)
    return {name: percentiles(values) for name, values in samples.items()}


def cpu(targets: dict[str, tuple[str, set[str]]], example: dict, requests: int) -> dict:
    """CPU ms per request by process for each target: ``{name: (url, apps serving it)}``."""

    def run(url: str) -> Callable[[], int]:
        def post_all() -> int:
            with httpx.Client(timeout=30) as client:
                timed_posts(client, url, example, WARMUP)
                return len(timed_posts(client, url, example, requests))

        return post_all

    return {name: cpu_ms_per_request(run(url), apps) for name, (url, apps) in targets.items()}


def timed_posts(client: httpx.Client, url: str, example: dict, count: int) -> list[float]:
    """Milliseconds each of ``count`` sequential POSTs took."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        client.post(url, json=example).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies
