"""batching: stage two's records/s on one heavy replica: batched as configured; one record
per forward pass (``max_batch_size=1``) with calls still shared; and one record per call
and per pass, no batching at all."""

from __future__ import annotations

import copy

from benchmarks import stage_two
from benchmarks.bench_config import deployment, main_app
from benchmarks.part import Part, Row, Service, ratio
from ops.local_cluster import deploy_config

RECORDS = 960
# name: (max_batch_size, records_per_call); None keeps the config's.
CASES = {"batched": (None, None), "model_unbatched": (1, None), "unbatched": (1, 1)}


def case_config(config: dict, batch_size: int | None, per_call: int | None) -> dict:
    changed = copy.deepcopy(config)
    heavy = deployment(main_app(changed), "HeavyModel")
    heavy["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
    if batch_size:
        heavy["user_config"] = heavy["user_config"] | {"max_batch_size": batch_size}
    if per_call:
        main_app(changed)["args"]["ticket_policy"]["records_per_call"] = per_call
        # One record per call needs many calls in flight, as before calls were shared.
        heavy["max_ongoing_requests"] = 32
    return changed


def measure(service: Service) -> dict:
    results = {}
    try:
        for name, (batch_size, per_call) in CASES.items():
            deploy_config(case_config(service.config, batch_size, per_call))
            results[name] = stage_two.throughput(service.url, service.example, records=RECORDS)
            print(f"    {name}: {results[name]} records/s", flush=True)
    finally:
        deploy_config(service.config)
    return {
        "records_per_s": results,
        "batched_vs_unbatched": ratio(results["batched"], results["unbatched"]),
        "batched_vs_model_unbatched": ratio(results["batched"], results["model_unbatched"]),
    }


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    if not (b := by_cluster.get("haproxy")):
        return []
    per_s = b["records_per_s"]
    return [
        (
            f"Batching: records/s, batched vs {label}",
            f"{per_s['batched']} vs {per_s[other]}: {b[key]}x",
            "",
        )
        for other, key, label in [
            ("model_unbatched", "batched_vs_model_unbatched", "max_batch_size=1, calls shared"),
            ("unbatched", "batched_vs_unbatched", "1 record per pass and per call"),
        ]
    ]


PART = Part("batching", measure, rows)
