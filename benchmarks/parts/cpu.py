"""cpu: CPU milliseconds per sequential request, by process, stage one against the no-op
app; behind HAProxy, the Python proxy, and HAProxy with its metrics on."""

from __future__ import annotations

from benchmarks import sequential
from benchmarks.bench_config import APP
from benchmarks.part import Part, Row, Service
from multistage_client import paths

CLUSTER_LABELS = {
    "haproxy": ("HAProxy", "<= 12 ms"),
    "python_proxy": ("Python proxy", ""),
    "haproxy_metrics": ("HAProxy, its metrics on", ""),
}


def measure(service: Service) -> dict:
    targets = {
        "stage_one": (f"{service.url}{paths.PREDICT}", {APP}),
        "noop_serve": (f"{service.url}/noop", {"noop"}),
    }
    return sequential.cpu(targets, service.example, service.requests)


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    rows: list[Row] = []
    for cluster, (label, target) in CLUSTER_LABELS.items():
        if c := by_cluster.get(cluster):
            figures = f"stage one {c['stage_one']['total']} ms, no-op {c['noop_serve']['total']} ms"
            rows.append((f"CPU per sequential request, all processes ({label})", figures, target))
    return rows


PART = Part("cpu", measure, rows, clusters=tuple(CLUSTER_LABELS))
