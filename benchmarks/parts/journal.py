"""journal: the ticket journal's backends (memory, SQLite, Redis) side by side, each in an
app of its own: sequential latency and CPU; then the memory backend's latency-bounded
throughput, and trials of the three in turn at that load and 10% below it."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

from benchmarks import sequential
from benchmarks.bench_config import main_app
from benchmarks.load_search import BOUND, USER_RATE, Search, search, side_by_side
from benchmarks.part import Part, Row, Service, p50_p99
from multistage_client import paths
from ops.local_cluster import deploy_config
from ops.redis_server import RedisServer

JOURNALS = {"journal_memory": "memory", "journal_sqlite": "sqlite", "journal_redis": "redis"}
LABELS = {"journal_memory": "memory", "journal_sqlite": "SQLite", "journal_redis": "Redis"}
ROUNDS = 2  # side-by-side trials per backend and load


def journal_config(config: dict, redis_url: str, scratch: Path) -> dict:
    """``config`` with a copy of the app per ticket journal backend (JOURNALS)."""
    changed = copy.deepcopy(config)
    main = main_app(changed)
    for name, backend in JOURNALS.items():
        app = copy.deepcopy(main)
        app.update(name=name, route_prefix=f"/{name}")
        app["args"]["journal"] = {
            "backend": backend,
            "path": str(scratch / f"{name}.sqlite"),
            "url": redis_url,
            "key_prefix": name,
        }
        changed["applications"].append(app)
    return changed


def measure(service: Service) -> dict:
    with tempfile.TemporaryDirectory() as scratch, RedisServer(Path(scratch)) as redis:
        deploy_config(journal_config(service.config, redis.url, Path(scratch)))
        try:
            return _measure_deployed(service)
        finally:
            deploy_config(service.config)


def _measure_deployed(service: Service) -> dict:
    targets = {name: f"{service.url}/{name}{paths.PREDICT}" for name in JOURNALS}
    latency = sequential.latency(targets, service.example, service.requests)
    cpu = sequential.cpu(
        {name: (url, {name}) for name, url in targets.items()},
        service.example,
        service.requests,
    )
    memory = Search("StreamUser", USER_RATE, f"/journal_memory{paths.PREDICT}", BOUND, 8)
    held = search(service, {"journal_memory": memory})["held"]["journal_memory"]
    # The memory backend's bound, and 10% below it: the most the journal may cut.
    loads = [held["users"], math.floor(held["users"] * 0.9)]
    by_name = {name: f"/{name}{paths.PREDICT}" for name in JOURNALS}
    return {
        "latency_ms": latency,
        "cpu_ms": cpu,
        "memory_held": held,
        "side_by_side": side_by_side(service, by_name, loads, ROUNDS),
    }


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    if not (j := by_cluster.get("haproxy")):
        return []
    cpu = " / ".join(f"{j['cpu_ms'][name]['total']:g}" for name in LABELS)
    latency = "; ".join(p50_p99(j["latency_ms"][name]) for name in LABELS)
    rows: list[Row] = [
        ("Journal memory; SQLite; Redis: stage one p50 / p99, sequential", latency, ""),
        ("Journal memory / SQLite / Redis: CPU per sequential request", f"{cpu} ms", ""),
        (
            "Journal memory: bounded throughput, every ticket followed (search)",
            f"{j['memory_held']['requests_per_s']:g} req/s",
            "",
        ),
    ]
    for load in j["side_by_side"]["journal_memory"]:
        at = [j["side_by_side"][name][load] for name in LABELS]
        held = " / ".join(figures["held"] for figures in at)
        p99 = " / ".join(f"{figures['p99_ms']:g}" for figures in at)
        rows.append(
            (
                f"Journal memory / SQLite / Redis at {load} req/s, side by side: "
                "trials held, stage one p99",
                f"{held}; {p99} ms",
                "durable ones hold at 0.9x of memory's bound",
            )
        )
    return rows


PART = Part("journal", measure, rows)
