"""sequential: stage one's latency, one request at a time, against bare Starlette, a no-op
Serve app and a naive single-stage app (its payoff)."""

from __future__ import annotations

from benchmarks import sequential
from benchmarks.part import Part, Row, Service, p50_p99, ratio
from multistage_client import paths


def measure(service: Service) -> dict:
    targets = {
        "stage_one": f"{service.url}{paths.PREDICT}",
        "noop_serve": f"{service.url}/noop",
        "naive_single_stage": f"{service.url}/naive",
    } | ({"bare_starlette": f"{service.bare}{paths.PREDICT}"} if service.bare else {})
    latency = sequential.latency(targets, service.example, service.requests)
    ours = latency["stage_one"]["p50"]
    ratios = {
        "stage_one_p50_vs_noop_serve": ratio(ours, latency["noop_serve"]["p50"]),
        "naive_p50_vs_stage_one_p50": ratio(latency["naive_single_stage"]["p50"], ours),
    }
    if service.bare:
        ratios["stage_one_p50_vs_bare_starlette"] = ratio(ours, latency["bare_starlette"]["p50"])
    return {"latency_ms": latency} | ratios


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    rows: list[Row] = []
    if o := by_cluster.get("haproxy"):
        latency = o["latency_ms"]
        for name, label in [
            ("stage_one", "Stage one"),
            ("noop_serve", "No-op Serve app"),
            ("naive_single_stage", "Naive single-stage app"),
            ("bare_starlette", "Bare Starlette + XGBoost"),
        ]:
            if name in latency:
                where = "" if name == "bare_starlette" else " (HAProxy)"
                rows.append((f"{label} p50 / p99, sequential{where}", p50_p99(latency[name]), ""))
        rows.append(
            ("Stage one p50 / no-op p50", f"{o['stage_one_p50_vs_noop_serve']}x", "<= 1.3x")
        )
        if bare := o.get("stage_one_p50_vs_bare_starlette"):
            rows.append(("Stage one p50 / bare p50", f"{bare}x", "<= 3x"))
        rows.append(
            ("Naive single-stage p50 / stage one p50", f"{o['naive_p50_vs_stage_one_p50']}x", "")
        )
    if o := by_cluster.get("python_proxy"):
        for name, label in [("stage_one", "Stage one"), ("noop_serve", "No-op Serve app")]:
            rows.append((f"{label} p50 / p99 (Python proxy)", p50_p99(o["latency_ms"][name]), ""))
    return rows


PART = Part("sequential", measure, rows, clusters=("haproxy", "python_proxy"))
