"""fast_path: the request path's settings, each switched off in an app of its own, side by
side with all of them on: latency and CPU per sequential request."""

from __future__ import annotations

import copy

from benchmarks import sequential
from benchmarks.bench_config import APP, main_app
from benchmarks.part import Part, Row, Service
from multistage_client import paths
from ops.local_cluster import deploy_config

OFF = {
    "actor_calls": {"store_calls": {"by_value": False}},
    "router_in_thread": {"env": {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "1"}},
    "user_code_in_thread": {"env": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}},
    "log_buffer_100": {"env": {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "100"}},
}


def fast_path_config(config: dict) -> dict:
    """``config`` with a copy of the app per setting of OFF, that one switched off."""
    changed = copy.deepcopy(config)
    main = main_app(changed)
    for name, off in OFF.items():
        app = copy.deepcopy(main)
        app.update(name=name, route_prefix=f"/{name}")
        app["args"]["store_calls"] |= off.get("store_calls", {})
        app["runtime_env"]["env_vars"] |= off.get("env", {})
        changed["applications"].append(app)
    return changed


def measure(service: Service) -> dict:
    deploy_config(fast_path_config(service.config))
    try:
        targets = {"all_on": f"{service.url}{paths.PREDICT}"} | {
            name: f"{service.url}/{name}{paths.PREDICT}" for name in OFF
        }
        latency = sequential.latency(targets, service.example, service.requests)
        apps = {"all_on": APP} | {name: name for name in OFF}
        cpu = sequential.cpu(
            {name: (url, {apps[name]}) for name, url in targets.items()},
            service.example,
            service.requests,
        )
    finally:
        deploy_config(service.config)
    return {"latency_ms": latency, "cpu_ms": cpu}


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    if not (f := by_cluster.get("haproxy")):
        return []
    rows: list[Row] = []
    for name in ["all_on", *OFF]:
        p50, cpu = f["latency_ms"][name]["p50"], f["cpu_ms"][name]["total"]
        rows.append(
            (f"Fast path: {name.replace('_', ' ')}", f"p50 {p50} ms, CPU {cpu} ms / request", "")
        )
    return rows


PART = Part("fast_path", measure, rows)
