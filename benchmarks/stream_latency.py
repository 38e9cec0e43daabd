"""Time from POST /v1/predict/stream to its stage1 and stage2 events, sequential requests.

    python -m benchmarks.stream_latency [--requests 100] [--url http://host:8000]

Without ``--url`` it starts ``serve run configs/local.yaml`` itself and stops it
afterwards. Writes ``results/stream_latency.json``.
"""

from __future__ import annotations

import time

import httpx
from httpx_sse import connect_sse

from benchmarks.report import percentiles, run_benchmark
from multistage_client import paths

WARMUP = 10


def measure(url: str, requests: int) -> dict:
    with httpx.Client(base_url=url, timeout=30) as client:
        example = client.get(paths.MODELS).raise_for_status().json()["example_request"]
        for _ in range(WARMUP):
            one_stream(client, example)
        timings = [one_stream(client, example) for _ in range(requests)]
    return {
        "requests": requests,
        "stage1_event_ms": percentiles([t["stage1"] for t in timings]),
        "stage2_event_ms": percentiles([t["stage2"] for t in timings]),
    }


def one_stream(client: httpx.Client, example: dict) -> dict[str, float]:
    """Milliseconds from sending the POST to each event's arrival."""
    started = time.perf_counter()
    arrivals = {}
    with connect_sse(client, "POST", paths.PREDICT_STREAM, json=example) as events:
        for event in events.iter_sse():
            arrivals[event.event] = (time.perf_counter() - started) * 1000
    if set(arrivals) != {"stage1", "stage2"}:
        raise SystemExit(f"unexpected events: {sorted(arrivals)}")
    return arrivals


if __name__ == "__main__":
    run_benchmark(__doc__, measure, requests=100, out="results/stream_latency.json")
