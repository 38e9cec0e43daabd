"""The benchmark: stage one against its baselines, side by side, in one run.

    make bench            (python -m benchmarks.bench [--parts ...])

Starts a local Ray cluster behind Serve's HAProxy ingress (as ``make run``) with the
multistage app (``configs/local.yaml``, heavy autoscaling delays shortened) and two
baselines beside it, then the same behind Serve's Python proxy, then HAProxy with its
per-request metrics on; plus a bare Starlette process. Measures, prints a table,
writes ``results/bench.json``, ``results/bench.md`` and PNG plots, and stops
everything it started. Parts:

- overhead: sequential stage one against bare Starlette, a no-op Serve app and a naive
  single-stage app (payoff);
- cpu: CPU milliseconds per sequential request, by process;
- fast_path: the request path's settings, each switched off in an app of its own;
- calls: what one Serve call costs its caller and its callee, by transport and by where
  Serve's router runs (``benchmarks/call_cost.py``);
- isolation: stage one's p99 with stage two idle, then saturated;
- batching: stage two's throughput with dynamic batching and without;
- throughput: latency-bounded throughput (locust, open loop), every ticket followed to
  its end;
- streams: 10/s feeds held under the streams bound, over HTTP (POST, then long-poll) and
  over stream sessions (one WebSocket each);
- autoscaling: a step load of stream sessions on stage two autoscaled from 1 to 2 heavy
  replicas, then on one replica;
- journal: the ticket journal's backends (memory, SQLite, Redis) side by side: sequential
  latency and CPU; then the memory backend's latency-bounded throughput, and trials of the
  three in turn at that load and 10% below it.

Behind the Python proxy: overhead, cpu and throughput; with HAProxy's metrics on: cpu.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import json
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import torch
import yaml

from benchmarks import plots, sequential, stage_two
from benchmarks.bound import Bound, highest_held
from benchmarks.cpu_split import cpu_ms_per_request
from benchmarks.load import LoadResult, run_locust
from benchmarks.report import write_results
from benchmarks.serve_process import wait_healthy
from demo.net import build_model
from multistage.client import paths
from multistage.models.schema import RecordSchema
from multistage.tickets.ids import new_secret
from ops.local_cluster import deploy_config, local_cluster
from ops.ports import free_port
from ops.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "configs" / "local.yaml"
APP = stage_two.APP
SECRET_ENV = "MULTISTAGE_TICKET_SECRET"  # the flood signs its ticket ids with it
BOUND = Bound(p99_ms=100.0, follows_tickets=True)
BASELINE_BOUND = Bound(p99_ms=100.0)  # the no-op app issues no tickets
# Streams: < 1% of records without a completed stage two, within 2 s at p99.
STREAM_BOUND = Bound(
    p99_ms=100.0, follows_tickets=True, max_without_stage_two=0.01, stage_two_p99_ms=2000.0
)
STREAM_RATE = 10.0
USER_RATE = 5.0  # requests/s per user of the req/s search: its step
JOURNAL_ROUNDS = 2  # side-by-side trials per journal backend and load
# The request path's settings, each switched off in an app of its own (fast_path part).
FAST_PATH_OFF = {
    "actor_calls": {"store_calls": {"by_value": False}},
    "router_in_thread": {"env": {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "1"}},
    "user_code_in_thread": {"env": {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}},
    "log_buffer_100": {"env": {"RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "100"}},
}
PARTS = (
    "overhead",
    "cpu",
    "fast_path",
    "calls",
    "isolation",
    "batching",
    "throughput",
    "streams",
    "autoscaling",
    "journal",
)
# The journal part's apps: the ticket journal on each backend.
JOURNALS = {"journal_memory": "memory", "journal_sqlite": "sqlite", "journal_redis": "redis"}
# The calls part's apps: Serve's router on the replica's main loop, or in a thread.
ROUTER_ON = {"router_on_loop": "0", "router_in_thread": "1"}
PYTHON_PROXY_PARTS = ("overhead", "cpu", "throughput")


def bench_config(port: int) -> dict:
    """The local config with one heavy replica, and the baselines beside it.

    Stage two's autoscaling has a part of its own (``autoscaling_config``); elsewhere a
    heavy replica starting mid-trial (importing torch: seconds of CPU on these 2 cores)
    would be measured instead of the request path.
    """
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["http_options"]["port"] = port
    (app,) = config["applications"]
    _deployment(app, "HeavyModel")["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
    shared = {key: app[key] for key in ("logging_config", "runtime_env")}
    config["applications"] += [
        {"name": "noop", "route_prefix": "/noop", "import_path": "benchmarks.baselines:noop_app"}
        | shared,
        {
            "name": "naive",
            "route_prefix": "/naive",
            "import_path": "benchmarks.baselines:naive_app",
            "args": app["args"],
        }
        | shared,
    ]
    return config


def autoscaling_config(config: dict, max_replicas: int) -> dict:
    """``config`` with stage two autoscaling as configs/local.yaml has it (on its backlog
    in records), up to ``max_replicas``, with the autoscaling part's delays and batches."""
    changed = copy.deepcopy(config)
    local = _app(yaml.safe_load(LOCAL_CONFIG.read_text()))
    heavy = _deployment(_app(changed), "HeavyModel")
    heavy["autoscaling_config"] = _deployment(local, "HeavyModel")["autoscaling_config"] | {
        "max_replicas": max_replicas,
        "upscale_delay_s": SCALING_LOAD.upscale_delay_s,
        "downscale_delay_s": SCALING_LOAD.downscale_delay_s,
    }
    heavy["user_config"] = heavy["user_config"] | {"max_batch_size": SCALING_LOAD.max_batch_size}
    return changed


@contextlib.contextmanager
def wide_heavy_model(config: dict) -> Iterator[dict]:
    """``config`` serving the widened stage two of the autoscaling part (weights made
    here, untrained)."""
    changed = copy.deepcopy(config)
    args = _app(changed)["args"]
    width = SCALING_LOAD.heavy_width
    model = build_model(RecordSchema.load(ROOT / args["schema_path"]), width=width)
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "wide.pt"
        torch.save(model.state_dict(), weights)
        args["heavy"] |= {"weights": str(weights), "factory_kwargs": {"width": width}}
        yield changed


def journal_config(config: dict, redis_url: str, scratch: Path) -> dict:
    """``config`` with a copy of the app per ticket journal backend (JOURNALS)."""
    changed = copy.deepcopy(config)
    main = _app(changed)
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


def fast_path_config(config: dict) -> dict:
    """``config`` with a copy of the app per setting of FAST_PATH_OFF, that one switched off."""
    changed = copy.deepcopy(config)
    main = _app(changed)
    for name, off in FAST_PATH_OFF.items():
        app = copy.deepcopy(main)
        app.update(name=name, route_prefix=f"/{name}")
        app["args"]["store_calls"] |= off.get("store_calls", {})
        app["runtime_env"]["env_vars"] |= off.get("env", {})
        changed["applications"].append(app)
    return changed


@contextlib.contextmanager
def bare_starlette() -> Iterator[str]:
    """The XGBoost model in plain Starlette under uvicorn, in a child process."""
    port = free_port()
    args = ["artifacts/tabular.ubj", "artifacts/schema.json", str(port)]
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.baselines", *args], cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, 60)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


class Bench:
    """The parts, run against one cluster's service at ``url``."""

    def __init__(self, url: str, config: dict, example: dict, args, bare: str | None) -> None:
        self.url = url
        self.config = config
        self.example = example
        self.args = args
        self.bare = bare  # bare Starlette's URL, for the overhead part

    def overhead(self) -> dict:
        print("overhead: sequential stage one vs its baselines", flush=True)
        targets = {
            "stage_one": f"{self.url}{paths.PREDICT}",
            "noop_serve": f"{self.url}/noop",
            "naive_single_stage": f"{self.url}/naive",
        } | ({"bare_starlette": f"{self.bare}{paths.PREDICT}"} if self.bare else {})
        latency = sequential.latency(targets, self.example, self.args.requests)
        ours = latency["stage_one"]["p50"]
        ratios = {
            "stage_one_p50_vs_noop_serve": _ratio(ours, latency["noop_serve"]["p50"]),
            "naive_p50_vs_stage_one_p50": _ratio(latency["naive_single_stage"]["p50"], ours),
        }
        if self.bare:
            ratios["stage_one_p50_vs_bare_starlette"] = _ratio(
                ours, latency["bare_starlette"]["p50"]
            )
        return {"latency_ms": latency} | ratios

    def cpu(self) -> dict:
        print("cpu: CPU milliseconds per sequential request, by process", flush=True)
        targets = {
            "stage_one": (f"{self.url}{paths.PREDICT}", {APP}),
            "noop_serve": (f"{self.url}/noop", {"noop"}),
        }
        return sequential.cpu(targets, self.example, self.args.requests)

    def fast_path(self) -> dict:
        print("fast_path: each setting of the request path switched off", flush=True)
        deploy_config(fast_path_config(self.config))
        try:
            targets = {"all_on": f"{self.url}{paths.PREDICT}"} | {
                name: f"{self.url}/{name}{paths.PREDICT}" for name in FAST_PATH_OFF
            }
            latency = sequential.latency(targets, self.example, self.args.requests)
            apps = {"all_on": APP} | {name: name for name in FAST_PATH_OFF}
            cpu = sequential.cpu(
                {name: (url, {apps[name]}) for name, url in targets.items()},
                self.example,
                self.args.requests,
            )
        finally:
            deploy_config(self.config)
        return {"latency_ms": latency, "cpu_ms": cpu}

    def journal(self) -> dict:
        """The ticket journal's cost: each backend in an app of its own, side by side."""
        print("journal: the ticket journal's backends, side by side", flush=True)
        with tempfile.TemporaryDirectory() as scratch, RedisServer(Path(scratch)) as redis:
            deploy_config(journal_config(self.config, redis.url, Path(scratch)))
            try:
                targets = {name: f"{self.url}/{name}{paths.PREDICT}" for name in JOURNALS}
                latency = sequential.latency(targets, self.example, self.args.requests)
                cpu = sequential.cpu(
                    {name: (url, {name}) for name, url in targets.items()},
                    self.example,
                    self.args.requests,
                )
                memory = ("StreamUser", USER_RATE, f"/journal_memory{paths.PREDICT}", BOUND, 8)
                held = self._search({"journal_memory": memory})["held"]["journal_memory"]
                # The memory backend's bound, and 10% below it: the most the journal may cut.
                loads = [held["users"], math.floor(held["users"] * 0.9)]
                side_by_side = self._side_by_side(
                    {name: f"/{name}{paths.PREDICT}" for name in JOURNALS}, loads
                )
            finally:
                deploy_config(self.config)
        return {
            "latency_ms": latency,
            "cpu_ms": cpu,
            "memory_held": held,
            "side_by_side": side_by_side,
        }

    def calls(self) -> dict:
        print("calls: CPU per Serve call, by transport and router placement", flush=True)
        changed = copy.deepcopy(self.config)
        env = _app(changed)["runtime_env"]["env_vars"]
        for name, in_thread in ROUTER_ON.items():
            app = {"name": name, "route_prefix": f"/{name}"}
            app["import_path"] = "benchmarks.call_cost:call_cost_app"
            app["runtime_env"] = {
                "env_vars": env | {"RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": in_thread}
            }
            changed["applications"].append(app)
        deploy_config(changed)
        samples: dict[str, list[dict]] = {}
        try:
            with httpx.Client(timeout=120) as client:
                for _ in range(3):  # rounds, so drift falls on all alike
                    for name in ROUTER_ON:
                        for transport in ("actor_call", "grpc"):
                            params = {"transport": transport, "calls": self.args.requests}
                            reply = client.get(f"{self.url}/{name}", params=params).json()
                            samples.setdefault(f"{transport}, {name}", []).append(reply)
        finally:
            deploy_config(self.config)
        return {
            case: {key: sorted(r[key] for r in runs)[1] for key in runs[0]}  # the median
            for case, runs in samples.items()
        }

    def isolation(self) -> dict:
        print("isolation: stage one with stage two idle, then saturated", flush=True)
        target = {"stage_one": f"{self.url}{paths.PREDICT}"}
        idle = sequential.latency(target, self.example, self.args.requests)["stage_one"]
        secret = bytes.fromhex(self.args.secret)
        with stage_two.Flood(ROOT / "artifacts" / "schema.json", self.example, secret):
            backlog_before = stage_two.unfinished()
            saturated = sequential.latency(target, self.example, self.args.requests)
            backlog_after = stage_two.unfinished()
        return {
            "idle_ms": idle,
            "saturated_ms": saturated["stage_one"],
            "stage_two_unfinished": [backlog_before, backlog_after],
            "p99_saturated_vs_idle": _ratio(saturated["stage_one"]["p99"], idle["p99"]),
        }

    def batching(self) -> dict:
        """Stage two's records/s on one heavy replica: batched as configured; one record
        per forward pass (``max_batch_size=1``) with calls still shared; and one record per
        call and per pass, no batching at all."""
        print("batching: stage two throughput, dynamic batching vs max_batch_size=1", flush=True)
        results = {}
        for name, batch_size, per_call in [
            ("batched", None, None),
            ("model_unbatched", 1, None),
            ("unbatched", 1, 1),
        ]:
            changed = copy.deepcopy(self.config)
            heavy = _deployment(_app(changed), "HeavyModel")
            heavy["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
            if batch_size:
                heavy["user_config"] = heavy["user_config"] | {"max_batch_size": batch_size}
            if per_call:
                _app(changed)["args"]["ticket_policy"]["records_per_call"] = per_call
                # One record per call needs many calls in flight, as before calls were shared.
                heavy["max_ongoing_requests"] = 32
            deploy_config(changed)
            results[name] = stage_two.throughput(self.url, self.example, records=960)
            print(f"    {name}: {results[name]} records/s", flush=True)
        deploy_config(self.config)
        return {
            "records_per_s": results,
            "batched_vs_unbatched": _ratio(results["batched"], results["unbatched"]),
            "batched_vs_model_unbatched": _ratio(results["batched"], results["model_unbatched"]),
        }

    def throughput(self) -> dict:
        print("throughput: latency-bounded, open loop (locust users at a fixed rate)", flush=True)
        return self._search(
            {
                # Each answer's ticket followed to its end (StreamUser), at USER_RATE per user.
                "stage_one": ("StreamUser", USER_RATE, paths.PREDICT, BOUND, 8),
                "noop_serve": ("RateUser", USER_RATE, "/noop", BASELINE_BOUND, 8),
            }
        ) | {"bound": BOUND.__dict__}

    def streams(self) -> dict:
        print("streams: 10/s feeds held, over HTTP and over stream sessions", flush=True)
        return self._search(
            {
                "http": ("StreamUser", STREAM_RATE, paths.PREDICT, STREAM_BOUND, 4),
                "sessions": ("StreamSessionUser", STREAM_RATE, paths.PREDICT, STREAM_BOUND, 8),
            }
        ) | {"bound": STREAM_BOUND.__dict__}

    def _trial(self, user: str, users: int, rate: float, path: str) -> LoadResult:
        runs = []

        def run() -> int:
            runs.append(run_locust(self.url, user, users, self.args.trial_seconds, rate, path))
            return runs[0].requests

        # What the service spent per request under this load, by process.
        cpu = cpu_ms_per_request(run, {_app_of(path)})
        stage_two.drain()  # each trial starts with stage two idle
        return dataclasses.replace(runs[0], service_cpu_ms=cpu)

    def _side_by_side(self, paths_by_name: dict[str, str], loads: list[int]) -> dict:
        """Trials of each app in turn at each load (users at USER_RATE), JOURNAL_ROUNDS
        times: drift falls on every app alike, where searches one after another see it
        unevenly."""
        trials: dict[str, dict[int, list[dict]]] = {name: {} for name in paths_by_name}
        for users in loads:
            for _ in range(JOURNAL_ROUNDS):
                for name, path in paths_by_name.items():
                    result = self._trial("StreamUser", users, USER_RATE, path)
                    verdict = "held" if BOUND.holds(result) else "broke"
                    print(
                        f"  {name} at {users * USER_RATE:g} req/s: p99 {result.p99_ms:g} ms, "
                        f"{result.achieved_rps:g} req/s -> {verdict}",
                        flush=True,
                    )
                    row = {"held": verdict == "held", "p99_ms": result.p99_ms}
                    row["stage_two_p99_ms"] = result.stage_two_p99_ms
                    cpu = result.service_cpu_ms or {}
                    row["store_cpu_ms"] = sum(
                        v for k, v in cpu.items() if k.endswith(":TicketStore")
                    )
                    row["service_cpu_ms"] = round(sum(cpu.values()), 2)
                    trials[name].setdefault(users, []).append(row)
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

    def _search(self, searches: dict[str, tuple]) -> dict:
        """The most users each search's bound holds for: {name: (user class, rate per user,
        path, bound, users to start from)}."""
        held, series = {}, {}
        for name, (user, rate, path, bound, start) in searches.items():
            print(f"  {name}:", flush=True)

            def trial(users: int, user=user, rate=rate, path=path) -> LoadResult:
                return self._trial(user, users, rate, path)

            users, trials = highest_held(trial, bound, start=start)
            series[name] = trials
            at_bound = next((t for t in trials if t.users == users), None)
            held[name] = {
                "users": users,
                "requests_per_s": users * rate,
                "cpu_ms_per_request_at_bound": at_bound and at_bound.service_cpu_ms,
                "trials": [t.__dict__ for t in trials],
                "load_generator_cpu_max": max(t.load_generator_cpu for t in trials),
            }
        return {"held": held, "series": series}

    def autoscaling(self) -> dict:
        """A step load of stream sessions with stage two autoscaled (1 to 2 heavy replicas),
        then the same load on one replica: the second should hold what the first broke."""
        print("autoscaling: heavy replicas under a step load of stream sessions", flush=True)
        with wide_heavy_model(self.config) as config:
            runs = {
                name: self._step_load(config, name, replicas)
                for name, replicas in SCALING_RUNS.items()
            }
        deploy_config(self.config)
        plots.autoscaling(
            {name: run.pop("timeline") for name, run in runs.items()},
            ROOT / "results" / "autoscaling.png",
        )
        return runs | {"setup": SCALING_LOAD.__dict__}

    def _step_load(self, config: dict, name: str, max_replicas: int) -> dict:
        load = SCALING_LOAD
        print(f"  {name}: 1 to {max_replicas} heavy replicas", flush=True)
        deploy_config(autoscaling_config(config, max_replicas))
        history = ROOT / "results" / f"autoscaling_{name}_history.csv"
        shape = [
            *("--step-users", str(load.streams_per_step), "--steps", str(load.steps)),
            *("--step-seconds", str(load.step_seconds)),
        ]
        seconds = load.step_seconds * load.steps
        with stage_two.ReplicaSampler() as sampler:
            run_locust(
                self.url,
                "StreamSessionUser",
                load.streams_per_step,
                seconds,
                rate=load.stream_rate,
                history_csv=history,
                shape=shape,
            )
            load_ended = time.monotonic() - sampler.started
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and sampler.replicas() > 1:
                time.sleep(1)
            time.sleep(2)
        stage_two.drain()
        timeline = sampler.timeline
        _merge_latency(timeline, history, sampler.started)
        return scaling_figures(timeline, load_ended, seconds) | {"timeline": timeline}


@dataclasses.dataclass(frozen=True)
class ScalingLoad:
    """The autoscaling part's load and the heavy deployment's settings for it."""

    streams_per_step: int = 2
    steps: int = 3
    step_seconds: float = 40
    stream_rate: float = 5.0  # records/s per stream
    # Stage two as a big model would be: the demo network widened (untrained: the
    # figures are about time, not accuracy), one record per forward pass, about 23 ms
    # on one core. One replica then saturates (~30 records/s) far below what the ingress
    # serves, and a second replica has the other core to run on. The demo model itself
    # (~150 records/s in batches) outruns the ingress here: its backlog never builds.
    heavy_width: int = 384
    max_batch_size: int = 1
    upscale_delay_s: float = 2
    downscale_delay_s: float = 8


SCALING_LOAD = ScalingLoad()
SCALING_RUNS = {"autoscaled": 2, "one_replica": 1}


def scaling_figures(timeline: list[dict], load_ended: float, seconds: float) -> dict:
    """When stage two scaled, and its time-to-result at the top step, from a step load's
    timeline (points a second apart, starting with the load)."""
    # Locust's per-second figures cover the last 10 s: those of the top step's second half.
    top_step = seconds - SCALING_LOAD.step_seconds / 2
    top = [p for p in timeline if top_step <= p["t"] <= load_ended and "stage_two_per_s" in p]
    p99s = [p["stage_two_p99_ms"] for p in top if p.get("stage_two_p99_ms") is not None]
    ended = sum(p["stage_two_per_s"] for p in top)
    # A stream session's records past their deadline (deadline_frames) end 'expired'.
    without = sum(p["stage_two_failed_per_s"] for p in top) / ended if ended else None
    target = _deployment(_app(yaml.safe_load(LOCAL_CONFIG.read_text())), "HeavyModel")
    target_records = target["autoscaling_config"]["policy"]["policy_kwargs"]["target_records"]

    def first(condition) -> float | None:
        return next((p["t"] for p in timeline if condition(p)), None)

    backlog_emptied = first(lambda p: p["t"] > load_ended and p["backlog_records"] == 0)

    return {
        "load_ended_at_s": round(load_ended, 1),
        "heavy_replicas_max": max(p["heavy_replicas"] for p in timeline),
        "heavy_replicas_end": timeline[-1]["heavy_replicas"],
        "backlog_over_target_at_s": first(lambda p: p["backlog_records"] > target_records),
        "replica_starting_at_s": first(lambda p: p["heavy_starting"] > 0),
        "scaled_up_at_s": first(lambda p: p["heavy_replicas"] > 1),
        "backlog_emptied_at_s": backlog_emptied,
        "scaled_down_at_s": first(
            lambda p: p["t"] > (backlog_emptied or load_ended) and p["heavy_replicas"] == 1
        ),
        "top_step_stage_two_p99_ms": max(p99s) if p99s else None,
        "top_step_without_stage_two": round(without, 4) if without is not None else None,
    }


def run_cluster(proxy: str, parts: list[str], args, bare: str | None, env: dict) -> dict:
    """Start a local cluster behind ``proxy``, deploy, run ``parts``, stop it."""
    config = bench_config(free_port())
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    results: dict = {}
    # Logical CPUs: the apps side by side ask for more than two, and share the real two.
    with local_cluster(proxy, env, num_cpus=12, log_to_driver=False):
        print(f"== behind {proxy}: deploying the service and its baselines...", flush=True)
        deploy_config(config)
        wait_healthy(url, 60)
        stage_two.store.cache_clear()  # a handle into this cluster, not the last one
        example = httpx.get(f"{url}{paths.MODELS}").json()["example_request"]
        bench = Bench(url, config, example, args, bare)
        for part in parts:
            results[part] = getattr(bench, part)()
            print(json.dumps({part: _headline(results[part])}), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="Sequential requests each.")
    parser.add_argument("--trial-seconds", type=float, default=15, help="Each locust trial.")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench.json")
    parser.add_argument("--parts", default=",".join(PARTS), help="Which parts, comma-separated.")
    parser.add_argument(
        "--proxies", default="haproxy,python,haproxy_metrics", help="Which clusters to run."
    )
    args = parser.parse_args()
    args.secret = new_secret().hex()
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; parts: {', '.join(PARTS)}")
    # Backgrounded, this process ignores SIGINT: let SIGTERM run the clean-up too (each
    # local cluster makes SIGTERM unwind through its own clean-up as well).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = {SECRET_ENV: args.secret}
    results: dict = {}
    series: dict = {}
    with bare_starlette() as bare:
        for proxy in args.proxies.split(","):
            if proxy == "haproxy":
                results["haproxy"] = run_cluster("haproxy", parts, args, bare, env)
            elif proxy == "python":
                wanted = [p for p in parts if p in PYTHON_PROXY_PARTS]
                results["python_proxy"] = run_cluster("python", wanted, args, None, env)
            elif proxy == "haproxy_metrics":
                wanted = [p for p in parts if p == "cpu"]
                metrics_on = env | {"RAY_SERVE_HAPROXY_METRICS_ENABLED": "1"}
                results["haproxy_metrics"] = run_cluster("haproxy", wanted, args, None, metrics_on)
            for cluster, figures in results.items():
                if trials := figures.get("throughput", {}).pop("series", None):
                    series[cluster] = trials
                figures.get("streams", {}).pop("series", None)
            write_results(args.out, results, echo=False)  # after each cluster: kept if one fails
    _plot(series)
    table = report_table(results)
    print(table)
    args.out.with_suffix(".md").write_text(table + "\n")


def _plot(series: dict[str, dict[str, list[LoadResult]]]) -> None:
    """Stage one's and the no-op app's latency against load, for each proxy."""
    lines = {
        f"{name} ({cluster})": trials
        for cluster, by_name in series.items()
        for name, trials in by_name.items()
    }
    if lines:
        plots.latency_vs_load(lines, BOUND.p99_ms, ROOT / "results" / "latency_vs_load.png")


def report_table(results: dict) -> str:
    """The headline figures, with the targets they are held against, as Markdown."""
    rows = [
        *_latency_rows(results),
        *_cpu_rows(results),
        *_stage_two_rows(results.get("haproxy", {})),
        *_journal_rows(results.get("haproxy", {}).get("journal")),
        *_throughput_rows(results),
    ]
    lines = ["| Measure | Result | Target |", "|---|---|---|"]
    lines += [f"| {measure} | {result} | {target} |" for measure, result, target in rows]
    return "\n".join(lines)


Row = tuple[str, str, str]


def _latency_rows(results: dict) -> list[Row]:
    rows = []
    if o := results.get("haproxy", {}).get("overhead"):
        latency = o["latency_ms"]
        for name, label in [
            ("stage_one", "Stage one"),
            ("noop_serve", "No-op Serve app"),
            ("naive_single_stage", "Naive single-stage app"),
            ("bare_starlette", "Bare Starlette + XGBoost"),
        ]:
            where = "" if name == "bare_starlette" else " (HAProxy)"
            rows.append((f"{label} p50 / p99, sequential{where}", _p50_p99(latency[name]), ""))
        rows += [
            ("Stage one p50 / no-op p50", f"{o['stage_one_p50_vs_noop_serve']}x", "<= 1.3x"),
            ("Stage one p50 / bare p50", f"{o['stage_one_p50_vs_bare_starlette']}x", "<= 3x"),
            ("Naive single-stage p50 / stage one p50", f"{o['naive_p50_vs_stage_one_p50']}x", ""),
        ]
    if o := results.get("python_proxy", {}).get("overhead"):
        for name, label in [("stage_one", "Stage one"), ("noop_serve", "No-op Serve app")]:
            rows.append((f"{label} p50 / p99 (Python proxy)", _p50_p99(o["latency_ms"][name]), ""))
    return rows


def _cpu_rows(results: dict) -> list[Row]:
    rows = []
    for cluster, label, target in [
        ("haproxy", "HAProxy", "<= 12 ms"),
        ("python_proxy", "Python proxy", ""),
        ("haproxy_metrics", "HAProxy, its metrics on", ""),
    ]:
        if c := results.get(cluster, {}).get("cpu"):
            figures = f"stage one {c['stage_one']['total']} ms, no-op {c['noop_serve']['total']} ms"
            rows.append((f"CPU per sequential request, all processes ({label})", figures, target))
    if f := results.get("haproxy", {}).get("fast_path"):
        for name in ["all_on", *FAST_PATH_OFF]:
            p50, cpu = f["latency_ms"][name]["p50"], f["cpu_ms"][name]["total"]
            label = f"Fast path: {name.replace('_', ' ')}"
            rows.append((label, f"p50 {p50} ms, CPU {cpu} ms / request", ""))
    for case, cost in results.get("haproxy", {}).get("calls", {}).items():
        figures = f"caller {cost['caller_cpu']} ms + callee {cost['callee_cpu']} ms CPU"
        rows.append((f"One Serve call: {case.replace('_', ' ')}", figures, ""))
    return rows


def _stage_two_rows(ha: dict) -> list[Row]:
    rows = []
    if i := ha.get("isolation"):
        figures = f"{_p50_p99(i['saturated_ms'])} vs {_p50_p99(i['idle_ms'])}"
        ratio = f"{figures}: {i['p99_saturated_vs_idle']}x (p99)"
        rows.append(("Isolation: stage one, stage two saturated vs idle", ratio, "<= 1.2x"))
    if b := ha.get("batching"):
        per_s = b["records_per_s"]
        for other, ratio, label in [
            ("model_unbatched", "batched_vs_model_unbatched", "max_batch_size=1, calls shared"),
            ("unbatched", "batched_vs_unbatched", "1 record per pass and per call"),
        ]:
            figures = f"{per_s['batched']} vs {per_s[other]}: {b[ratio]}x"
            rows.append((f"Batching: records/s, batched vs {label}", figures, ""))
    if a := ha.get("autoscaling"):
        rows += _autoscaling_rows(a)
    return rows


def _autoscaling_rows(a: dict) -> list[Row]:
    scaled, fixed, load = a["autoscaled"], a["one_replica"], a["setup"]
    top = f"{load['streams_per_step'] * load['steps'] * load['stream_rate']:g} records/s"
    lag = _minus(scaled["scaled_up_at_s"], scaled["backlog_over_target_at_s"])
    start = _minus(scaled["scaled_up_at_s"], scaled["replica_starting_at_s"])
    down = _minus(scaled["scaled_down_at_s"], scaled["backlog_emptied_at_s"])
    bound = STREAM_BOUND.stage_two_p99_ms
    return [
        (
            "Autoscaling: backlog over target to second heavy replica running",
            f"{lag} s (of which the replica's start: {start} s)",
            f"<= upscale delay ({load['upscale_delay_s']:g} s) + one replica start",
        ),
        (
            f"Autoscaling: stage two p99 / records without it at the top step ({top})",
            f"{scaled['top_step_stage_two_p99_ms']} ms / "
            f"{_percent(scaled['top_step_without_stage_two'])} with up to 2 replicas vs "
            f"{fixed['top_step_stage_two_p99_ms']} ms / "
            f"{_percent(fixed['top_step_without_stage_two'])} with 1",
            f"<= {bound:g} ms and < 1% with 2 where 1 breaks it",
        ),
        (
            "Autoscaling: back to 1 heavy replica after the backlog emptied",
            f"{down} s (ended at {scaled['heavy_replicas_end']})",
            f"downscale delay ({load['downscale_delay_s']:g} s) + a replica's stop",
        ),
    ]


def _journal_rows(j: dict | None) -> list[Row]:
    if not j:
        return []
    names = {"journal_memory": "memory", "journal_sqlite": "SQLite", "journal_redis": "Redis"}
    cpu = " / ".join(f"{j['cpu_ms'][name]['total']:g}" for name in names)
    latency = "; ".join(_p50_p99(j["latency_ms"][name]) for name in names)
    rows = [
        ("Journal memory; SQLite; Redis: stage one p50 / p99, sequential", latency, ""),
        ("Journal memory / SQLite / Redis: CPU per sequential request", f"{cpu} ms", ""),
        (
            "Journal memory: bounded throughput, every ticket followed (search)",
            f"{j['memory_held']['requests_per_s']:g} req/s",
            "",
        ),
    ]
    for load in j["side_by_side"]["journal_memory"]:
        at = {name: j["side_by_side"][name][load] for name in names}
        held = " / ".join(f"{figures['held']}" for figures in at.values())
        p99 = " / ".join(f"{figures['p99_ms']:g}" for figures in at.values())
        rows.append(
            (
                f"Journal memory / SQLite / Redis at {load} req/s, side by side: "
                "trials held, stage one p99",
                f"{held}; {p99} ms",
                "durable ones hold at 0.9x of memory's bound",
            )
        )
    return rows


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f}%"


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def _throughput_rows(results: dict) -> list[Row]:
    rows = []
    noop_python = (
        results.get("python_proxy", {}).get("throughput", {}).get("held", {}).get("noop_serve")
    )
    for cluster, label in [("haproxy", "HAProxy"), ("python_proxy", "Python proxy")]:
        if not (t := results.get(cluster, {}).get("throughput")):
            continue
        held = {name: figures["requests_per_s"] for name, figures in t["held"].items()}
        ours, target = f"{held['stage_one']:g} req/s", ""
        if cluster == "haproxy":
            target = ">= 150 req/s, >= 3x the no-op app behind the Python proxy"
            if noop_python:
                ours += f" ({_ratio(held['stage_one'], noop_python['requests_per_s'])}x)"
        rows += [
            (f"Bounded throughput, every ticket followed ({label})", ours, target),
            (f"Bounded throughput, no-op app ({label})", f"{held['noop_serve']:g} req/s", ""),
        ]
        if cpu := t["held"]["stage_one"].get("cpu_ms_per_request_at_bound"):
            cores = cpu["total"] * held["stage_one"] / 1000
            figures = f"{cpu['total']} ms / request: {cores:.2f} cores of 2"
            rows.append((f"Service CPU at that bound, load generator apart ({label})", figures, ""))
    if s := results.get("haproxy", {}).get("streams"):
        http, sessions = s["held"]["http"]["users"], s["held"]["sessions"]["users"]
        ratio = f" ({_ratio(sessions, http)}x HTTP)" if http else ""
        rows += [
            ("10/s streams held over HTTP: POST, then long-poll", str(http), ">= 12"),
            ("10/s streams held on stream sessions (WebSocket)", f"{sessions}{ratio}",
             ">= 25 and >= 2x HTTP"),
        ]  # fmt: skip
    return rows


def _merge_latency(timeline: list[dict], history: Path, started: float) -> None:
    """Locust's per-second history (wall-clock stamps) onto the replica timeline."""
    wall_start = time.time() - (time.monotonic() - started)
    rows = list(csv.DictReader(history.open())) if history.exists() else []
    for point in timeline:
        second = wall_start + point["t"]
        for row in rows:
            if abs(float(row["Timestamp"]) - second) < 1:
                key = {"POST": "p99_ms", "STAGE2": "stage_two_p99_ms"}.get(row["Type"])
                if key and row["99%"] not in ("N/A", ""):
                    point[key] = float(row["99%"])
                if row["Type"] == "STAGE2":  # records per second, and those without a result
                    point["stage_two_per_s"] = float(row["Requests/s"])
                    point["stage_two_failed_per_s"] = float(row["Failures/s"])
                if row["Name"] == "Aggregated":
                    point["users"] = int(row["User Count"])


def _app_of(path: str) -> str:
    """The app a request path goes to: its first segment, unless that is the API's."""
    first = path.strip("/").split("/")[0]
    return APP if f"/{first}" == paths.API_PREFIX else first


def _app(config: dict) -> dict:
    (app,) = [a for a in config["applications"] if a["name"] == APP]
    return app


def _deployment(app: dict, name: str) -> dict:
    return next(d for d in app["deployments"] if d["name"] == name)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _p50_p99(figures: dict) -> str:
    return f"{figures['p50']} / {figures['p99']} ms"


def _headline(result: dict) -> dict:
    """A part's result without its long lists, for progress output."""
    skip = ("timeline", "held", "series")
    return {k: v for k, v in result.items() if k not in skip} | (
        {"held": {k: v["requests_per_s"] for k, v in result["held"].items()}}
        if "held" in result
        else {}
    )


if __name__ == "__main__":
    main()
