"""Locust trials against the service, and the searches built of them: the most load a
bound holds for, and trials of several apps in turn at fixed loads."""

from __future__ import annotations

import dataclasses
import statistics

from benchmarks import stage_two
from benchmarks.bench_config import APP
from benchmarks.bound import Bound, highest_held
from benchmarks.cpu_split import cpu_ms_per_request
from benchmarks.load import LoadResult, run_locust
from benchmarks.part import Service
from multistage_client import paths

USER_RATE = 5.0  # requests/s per user of the req/s search: its step
BOUND = Bound(p99_ms=100.0, follows_tickets=True)
BASELINE_BOUND = Bound(p99_ms=100.0)  # the no-op app issues no tickets
# Streams: < 1% of records without a completed stage two, within 2 s at p99.
STREAM_BOUND = Bound(
    p99_ms=100.0, follows_tickets=True, max_without_stage_two=0.01, stage_two_p99_ms=2000.0
)


@dataclasses.dataclass(frozen=True)
class Search:
    """One search for the most users ``bound`` holds for."""

    user: str  # the locust user class
    rate: float  # requests/s per user
    path: str
    bound: Bound
    start: int  # users to start from


def trial(service: Service, user: str, users: int, rate: float, path: str) -> LoadResult:
    """One locust run, with what the service spent per request under it, by process."""
    runs = []

    def run() -> int:
        runs.append(run_locust(service.url, user, users, service.trial_seconds, rate, path))
        return runs[0].requests

    cpu = cpu_ms_per_request(run, {app_of(path)})
    stage_two.drain()  # each trial starts with stage two idle
    return dataclasses.replace(runs[0], service_cpu_ms=cpu)


def search(service: Service, searches: dict[str, Search]) -> dict:
    """The most users each search's bound holds for, with every trial it took."""
    held = {}
    for name, s in searches.items():
        print(f"  {name}:", flush=True)

        def one(users: int, s: Search = s) -> LoadResult:
            return trial(service, s.user, users, s.rate, s.path)

        users, trials = highest_held(one, s.bound, start=s.start)
        at_bound = next((t for t in trials if t.users == users), None)
        held[name] = {
            "users": users,
            "requests_per_s": users * s.rate,
            "cpu_ms_per_request_at_bound": at_bound and at_bound.service_cpu_ms,
            "trials": [t.__dict__ for t in trials],
            "load_generator_cpu_max": max(t.load_generator_cpu for t in trials),
        }
    return {"held": held}


def side_by_side(
    service: Service, paths_by_name: dict[str, str], loads: list[int], rounds: int
) -> dict:
    """Trials of each app in turn at each load (users at USER_RATE), ``rounds`` times:
    drift falls on every app alike, where searches one after another see it unevenly."""
    trials: dict[str, dict[int, list[dict]]] = {name: {} for name in paths_by_name}
    for users in loads:
        for _ in range(rounds):
            for name, path in paths_by_name.items():
                result = trial(service, "StreamUser", users, USER_RATE, path)
                trials[name].setdefault(users, []).append(_side_by_side_row(name, users, result))
    return {
        name: {
            f"{users * USER_RATE:g}": {
                "held": f"{sum(t['held'] for t in rows)}/{len(rows)}",
                "p99_ms": statistics.median(t["p99_ms"] for t in rows),
                "trials": rows,
            }
            for users, rows in by_load.items()
        }
        for name, by_load in trials.items()
    }


def _side_by_side_row(name: str, users: int, result: LoadResult) -> dict:
    verdict = "held" if BOUND.holds(result) else "broke"
    print(
        f"  {name} at {users * USER_RATE:g} req/s: p99 {result.p99_ms:g} ms, "
        f"{result.achieved_rps:g} req/s -> {verdict}",
        flush=True,
    )
    cpu = result.service_cpu_ms or {}
    return {
        "held": verdict == "held",
        "p99_ms": result.p99_ms,
        "stage_two_p99_ms": result.stage_two_p99_ms,
        "store_cpu_ms": sum(v for k, v in cpu.items() if k.endswith(":TicketStore")),
        "service_cpu_ms": round(sum(cpu.values()), 2),
    }


def app_of(path: str) -> str:
    """The app a request path goes to: its first segment, unless that is the API's."""
    first = path.strip("/").split("/")[0]
    return APP if f"/{first}" == paths.API_PREFIX else first
