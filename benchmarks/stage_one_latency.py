"""Stage one's latency over sequential HTTP requests, and a check that tickets resolve.

    python -m benchmarks.stage_one_latency [--requests 200] [--url http://host:8000]

Without ``--url`` it starts ``serve run configs/local.yaml`` itself and stops it
afterwards. Prints percentiles (client-measured, and the server's own ``latency_ms``)
and writes ``results/stage_one_latency.json``.
"""

from __future__ import annotations

import time

import httpx

from benchmarks.report import percentiles, run_benchmark
from multistage_client import paths

WARMUP = 20


def measure(url: str, requests: int) -> dict:
    with httpx.Client(base_url=url, timeout=30) as client:
        example = client.get(paths.MODELS).raise_for_status().json()["example_request"]
        for _ in range(WARMUP):
            client.post(paths.PREDICT, json=example).raise_for_status()
        client_ms, server_ms, tickets = [], [], []
        for _ in range(requests):
            started = time.perf_counter()
            answer = client.post(paths.PREDICT, json=example).raise_for_status().json()
            client_ms.append((time.perf_counter() - started) * 1000)
            server_ms.append(answer["stage_one"]["latency_ms"])
            tickets.append(answer["stage_two"]["url"])
        # Every ticket must end completed: a fast stage one that loses stage two is no win.
        statuses = [client.get(url, params={"wait": 20}).json()["status"] for url in tickets]
    if statuses != ["completed"] * requests:
        raise SystemExit(f"not every ticket completed: {sorted(set(statuses))}")
    return {
        "requests": requests,
        "stage_one_client_ms": percentiles(client_ms),
        "stage_one_server_ms": percentiles(server_ms),
        "tickets_completed": len(statuses),
    }


if __name__ == "__main__":
    run_benchmark(__doc__, measure, requests=200, out="results/stage_one_latency.json")
