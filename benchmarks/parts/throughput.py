"""throughput: latency-bounded throughput, open loop (locust users at a fixed rate), every
ticket followed to its end, against the no-op app's."""

from __future__ import annotations

from benchmarks.load_search import BASELINE_BOUND, BOUND, USER_RATE, Search, search
from benchmarks.part import Part, Row, Service, ratio
from multistage_client import paths

CLUSTER_LABELS = {"haproxy": "HAProxy", "python_proxy": "Python proxy"}


def measure(service: Service) -> dict:
    return search(
        service,
        {
            # Each answer's ticket followed to its end (StreamUser), at USER_RATE per user.
            "stage_one": Search("StreamUser", USER_RATE, paths.PREDICT, BOUND, 8),
            "noop_serve": Search("RateUser", USER_RATE, "/noop", BASELINE_BOUND, 8),
        },
    ) | {"bound": BOUND.__dict__}


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    rows: list[Row] = []
    noop_python = by_cluster.get("python_proxy", {}).get("held", {}).get("noop_serve")
    for cluster, label in CLUSTER_LABELS.items():
        if not (t := by_cluster.get(cluster)):
            continue
        held = {name: figures["requests_per_s"] for name, figures in t["held"].items()}
        ours, target = f"{held['stage_one']:g} req/s", ""
        if cluster == "haproxy":
            target = ">= 150 req/s, >= 3x the no-op app behind the Python proxy"
            if noop_python:
                ours += f" ({ratio(held['stage_one'], noop_python['requests_per_s'])}x)"
        rows += [
            (f"Bounded throughput, every ticket followed ({label})", ours, target),
            (f"Bounded throughput, no-op app ({label})", f"{held['noop_serve']:g} req/s", ""),
        ]
        if cpu := t["held"]["stage_one"].get("cpu_ms_per_request_at_bound"):
            cores = cpu["total"] * held["stage_one"] / 1000
            figures = f"{cpu['total']} ms / request: {cores:.2f} cores of 2"
            rows.append((f"Service CPU at that bound, load generator apart ({label})", figures, ""))
    return rows


PART = Part("throughput", measure, rows, clusters=tuple(CLUSTER_LABELS))
