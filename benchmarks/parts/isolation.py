"""isolation: stage one's latency with stage two idle, then with stage two saturated by a
flood of submissions straight into the ticket store."""

from __future__ import annotations

from benchmarks import sequential, stage_two
from benchmarks.bench_config import ROOT
from benchmarks.part import Part, Row, Service, p50_p99, ratio
from multistage_client import paths


def measure(service: Service) -> dict:
    target = {"stage_one": f"{service.url}{paths.PREDICT}"}
    idle = sequential.latency(target, service.example, service.requests)["stage_one"]
    with stage_two.Flood(ROOT / "artifacts" / "schema.json", service.example, service.secret):
        backlog_before = stage_two.unfinished()
        saturated = sequential.latency(target, service.example, service.requests)
        backlog_after = stage_two.unfinished()
    return {
        "idle_ms": idle,
        "saturated_ms": saturated["stage_one"],
        "stage_two_unfinished": [backlog_before, backlog_after],
        "p99_saturated_vs_idle": ratio(saturated["stage_one"]["p99"], idle["p99"]),
    }


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    if not (i := by_cluster.get("haproxy")):
        return []
    figures = f"{p50_p99(i['saturated_ms'])} vs {p50_p99(i['idle_ms'])}"
    return [
        (
            "Isolation: stage one, stage two saturated vs idle",
            f"{figures}: {i['p99_saturated_vs_idle']}x (p99)",
            "<= 1.2x",
        )
    ]


PART = Part("isolation", measure, rows)
