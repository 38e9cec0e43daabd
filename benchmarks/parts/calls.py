"""calls: what one Serve call costs its caller and its callee, by transport (actor call or
gRPC) and by where Serve's router runs (``benchmarks/call_cost.py``)."""

from __future__ import annotations

import copy

import httpx

from benchmarks.bench_config import main_app
from benchmarks.part import Part, Row, Service
from ops.local_cluster import deploy_config

# The apps: Serve's router on the replica's main loop, or in a thread.
ROUTER_ON = {"router_on_loop": "0", "router_in_thread": "1"}
ROUNDS = 3  # so drift falls on every case alike; the median is reported


def calls_config(config: dict) -> dict:
    changed = copy.deepcopy(config)
    env = main_app(changed)["runtime_env"]["env_vars"]
    for name, in_thread in ROUTER_ON.items():
        changed["applications"].append(
            {
                "name": name,
                "route_prefix": f"/{name}",
                "import_path": "benchmarks.call_cost:call_cost_app",
                "runtime_env": {
                    "env_vars": env | {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": in_thread}
                },
            }
        )
    return changed


def measure(service: Service) -> dict:
    deploy_config(calls_config(service.config))
    samples: dict[str, list[dict]] = {}
    try:
        with httpx.Client(timeout=120) as client:
            for _ in range(ROUNDS):
                for name in ROUTER_ON:
                    for transport in ("actor_call", "grpc"):
                        params = {"transport": transport, "calls": service.requests}
                        reply = client.get(f"{service.url}/{name}", params=params).json()
                        samples.setdefault(f"{transport}, {name}", []).append(reply)
    finally:
        deploy_config(service.config)
    return {
        case: {key: sorted(r[key] for r in runs)[ROUNDS // 2] for key in runs[0]}
        for case, runs in samples.items()
    }


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    return [
        (
            f"One Serve call: {case.replace('_', ' ')}",
            f"caller {cost['caller_cpu']} ms + callee {cost['callee_cpu']} ms CPU",
            "",
        )
        for case, cost in by_cluster.get("haproxy", {}).items()
    ]


PART = Part("calls", measure, rows)
