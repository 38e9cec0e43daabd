"""The benchmark: stage one against its baselines, side by side, in one run.

    make bench            (python -m benchmarks.bench)

Starts a local Ray cluster with the multistage app (``configs/local.yaml``, heavy
autoscaling delays shortened) and two baselines on the same Serve proxy, plus a bare
Starlette process; measures; prints a table; writes ``results/bench.json`` and PNG
plots; stops everything it started. Parts:

1. overhead floor: sequential stage one vs bare Starlette and a no-op Serve app;
2. isolation: stage one's p99 with stage two idle vs saturated;
3. batching: stage two's throughput with dynamic batching vs ``max_batch_size=1``;
4. payoff: stage one's p50 vs a single-stage endpoint that awaits both models;
   (cpu: CPU milliseconds per request by process, stage one's path vs the no-op app's;)
5. latency-bounded throughput (locust, open loop) for requests/s and 10/s streams;
6. autoscaling: heavy replicas under a step load of streams, and after it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import functools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import ray
import yaml
from ray import serve
from ray.serve.handle import DeploymentHandle

from benchmarks import plots
from benchmarks.bound import Bound, highest_held
from benchmarks.cpu_split import cpu_ms_per_request
from benchmarks.load import LoadResult, run_locust
from benchmarks.report import percentiles, write_results
from benchmarks.serve_process import wait_healthy
from multistage.records import RecordParser
from multistage.schema import RecordSchema
from ops.local_cluster import deploy_config, free_port

ROOT = Path(__file__).resolve().parent.parent
APP = "multistage"
BOUND = Bound(p99_ms=100.0)
STREAM_BOUND = Bound(p99_ms=100.0, stage_two_p99_ms=2000.0)
STREAM_RATE = 10.0
RATE_USER_RATE = 5.0  # requests/s per RateUser: the search's step; 1/rate stays above the bound
BACKLOG = 256  # unfinished tickets that keep stage two saturated: 4x what a replica holds


def bench_config(port: int) -> dict:
    """The local config, its heavy deployment quick to scale, and the baselines beside it."""
    config = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    config["http_options"]["port"] = port
    (app,) = config["applications"]
    heavy = next(d for d in app["deployments"] if d["name"] == "HeavyModel")
    # Quick to scale, and at a queue a CPU replica reaches under this machine's load
    # (a call carries many tickets: one call queued behind another is a backlog).
    heavy["autoscaling_config"] |= {
        "upscale_delay_s": 2,
        "downscale_delay_s": 8,
        "target_ongoing_requests": 1,
    }
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


def sequential(targets: dict[str, str], example: dict, requests: int) -> dict[str, dict]:
    """Each target's client-side latency over ``requests`` sequential POSTs.

    Targets take turns in rounds, so drift on a shared machine falls on all alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in targets}
    with httpx.Client(timeout=30) as client:
        for url in targets.values():  # warm connections and replicas
            for _ in range(20):
                client.post(url, json=example).raise_for_status()
        for _ in range(10):
            for name, url in targets.items():
                samples[name] += _timed_posts(client, url, example, requests // 10)
    return {name: percentiles(values) for name, values in samples.items()}


def _timed_posts(client: httpx.Client, url: str, example: dict, count: int) -> list[float]:
    """Milliseconds each of ``count`` sequential POSTs took."""
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        client.post(url, json=example).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def overhead_and_payoff(url: str, bare: str, example: dict, requests: int) -> dict:
    print("1+4. sequential stage one vs bare Starlette, no-op Serve, naive", flush=True)
    targets = {
        "stage_one": f"{url}/v1/predict",
        "bare_starlette": f"{bare}/v1/predict",
        "noop_serve": f"{url}/noop",
        "naive_single_stage": f"{url}/naive",
    }
    latency = sequential(targets, example, requests)
    ours = latency["stage_one"]
    return {
        "latency_ms": latency,
        "stage_one_p50_vs_noop_serve": _ratio(ours["p50"], latency["noop_serve"]["p50"]),
        "stage_one_p50_vs_bare_starlette": _ratio(ours["p50"], latency["bare_starlette"]["p50"]),
        "stage_one_p99_vs_noop_serve": _ratio(ours["p99"], latency["noop_serve"]["p99"]),
        "naive_p50_vs_stage_one_p50": _ratio(latency["naive_single_stage"]["p50"], ours["p50"]),
    }


def cpu_split(url: str, example: dict, requests: int) -> dict:
    """CPU per request by process: stage one's path against the no-op app's."""
    print("cpu: CPU milliseconds per sequential request, by process", flush=True)

    def run(target: str) -> Callable[[], int]:
        def post_all() -> int:
            with httpx.Client(timeout=30) as client:
                return len(_timed_posts(client, target, example, requests))

        return post_all

    return {
        name: cpu_ms_per_request(run(target))
        for name, target in [("stage_one", f"{url}/v1/predict"), ("noop_serve", f"{url}/noop")]
    }


def isolation(url: str, example: dict, requests: int) -> dict:
    """Stage one's latency idle, then while batches keep stage two's queue full."""
    print("2. isolation: stage one with stage two idle, then saturated", flush=True)
    idle = sequential({"idle": f"{url}/v1/predict"}, example, requests)["idle"]
    stop = threading.Event()
    flooder = threading.Thread(target=_flood_stage_two, args=(example, stop), daemon=True)
    flooder.start()
    time.sleep(3)  # let the queue fill
    backlog_before = _unfinished()
    saturated = sequential({"saturated": f"{url}/v1/predict"}, example, requests)["saturated"]
    backlog_after = _unfinished()
    stop.set()
    flooder.join()
    _drain(url)
    return {
        "idle_ms": idle,
        "saturated_ms": saturated,
        "stage_two_unfinished": [backlog_before, backlog_after],
        "p99_saturated_vs_idle": _ratio(saturated["p99"], idle["p99"]),
    }


def _flood_stage_two(example: dict, stop: threading.Event) -> None:
    """Keep at least BACKLOG tickets unfinished: every heavy replica busy, more queued.

    Submitted straight to the ticket store, topped up rather than flooded: the ingress
    then serves only the measured requests, so any slowdown is stage two's doing.
    """
    schema = RecordSchema.load(ROOT / "artifacts" / "schema.json")
    records = [RecordParser(schema).parse(json.dumps(example).encode())] * 64
    while not stop.is_set():
        if _unfinished() < BACKLOG:
            _store().submit_many.remote(records, [None] * len(records)).result()
        else:
            time.sleep(0.05)


@functools.cache
def _store() -> DeploymentHandle:
    """One handle for every poll: each new handle sets up its own routing."""
    return serve.get_deployment_handle("TicketStore", APP)


def _unfinished() -> int:
    return _store().stats.remote().result().unfinished


def _drain(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while _unfinished() and time.monotonic() < deadline:
        time.sleep(0.5)


def batching(url: str, config: dict, example: dict, records: int) -> dict:
    """Stage two's records/s on one heavy replica: batched as configured; one record per
    forward pass (``max_batch_size=1``) with calls still shared; and one record per call
    and per pass, no batching at all."""
    print("3. batching: stage two throughput, dynamic batching vs max_batch_size=1", flush=True)
    results = {}
    for name, batch_size, per_call in [
        ("batched", None, None),
        ("model_unbatched", 1, None),
        ("unbatched", 1, 1),
    ]:
        changed = copy.deepcopy(config)
        heavy = _deployment(changed, "HeavyModel")
        heavy["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
        if batch_size:
            heavy["user_config"] = heavy["user_config"] | {"max_batch_size": batch_size}
        if per_call:
            _app(changed)["args"]["tickets"]["records_per_call"] = per_call
            # One record per call needs many calls in flight, as before calls were shared.
            heavy["max_ongoing_requests"] = 32
        deploy_config(changed)
        results[name] = _stage_two_throughput(url, example, records)
        print(f"    {name}: {results[name]} records/s", flush=True)
    deploy_config(config)
    return {
        "records_per_s": results,
        "batched_vs_unbatched": _ratio(results["batched"], results["unbatched"]),
        "batched_vs_model_unbatched": _ratio(results["batched"], results["model_unbatched"]),
    }


def _stage_two_throughput(url: str, example: dict, records: int) -> float:
    """Records/s from the first submission until the store has no unfinished ticket."""
    with httpx.Client(timeout=60) as client:
        started = time.monotonic()
        tickets = []
        for _ in range(records // 64):
            answer = client.post(f"{url}/v1/predict/batch", json={"records": [example] * 64})
            tickets += [item["ticket"] for item in answer.raise_for_status().json()["results"]]
        while _unfinished():
            time.sleep(0.2)  # each poll costs CPU that stage two would otherwise get
        elapsed = time.monotonic() - started
        # Reading results is not part of the throughput; checking a sample of them is.
        ended = {client.get(f"{url}/v1/predictions/{t}").json()["status"] for t in tickets[::16]}
    if None in tickets or ended != {"completed"}:
        raise RuntimeError(f"stage two did not complete every record: {ended}")
    return round(len(tickets) / elapsed, 1)


def bounded_throughput(url: str, seconds: float) -> dict:
    print("5. latency-bounded throughput (open loop: locust users at a fixed rate)", flush=True)
    series: dict[str, list[LoadResult]] = {}
    held = {}
    for name, user, rate, path, bound in [
        ("noop_serve", "RateUser", RATE_USER_RATE, "/noop", BOUND),
        ("stage_one", "RateUser", RATE_USER_RATE, "/v1/predict", BOUND),
        ("naive_single_stage", "RateUser", RATE_USER_RATE, "/naive", BOUND),
        ("streams", "StreamUser", STREAM_RATE, "/v1/predict", STREAM_BOUND),
    ]:
        print(f"  {name}:", flush=True)

        def trial(users: int, user=user, rate=rate, path=path) -> LoadResult:
            result = run_locust(url, user, users, seconds, rate=rate, path=path)
            _drain(url)  # each trial starts with stage two idle
            return result

        users, trials = highest_held(trial, bound, start=2)
        series[name] = trials
        held[name] = {
            "users": users,
            "requests_per_s": users * rate,
            "trials": [t.__dict__ for t in trials],
            "load_generator_cpu_max": max(t.load_generator_cpu for t in trials),
        }
    plots.latency_vs_load(
        {k: series[k] for k in ("stage_one", "noop_serve", "naive_single_stage")},
        BOUND.p99_ms,
        ROOT / "results" / "latency_vs_load.png",
    )
    return {
        "bound": BOUND.__dict__,
        "stream_bound": STREAM_BOUND.__dict__,
        "held": held,
        "stage_one_vs_noop_serve": _ratio(
            held["stage_one"]["requests_per_s"], held["noop_serve"]["requests_per_s"]
        ),
    }


def autoscaling(url: str, streams: int, step_seconds: float) -> dict:
    """Streams in three steps, then none: heavy replicas should rise, then fall back."""
    print("6. autoscaling: heavy replicas under a step load of streams", flush=True)
    timeline: list[dict] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            status = serve.status().applications[APP].deployments["HeavyModel"]
            running = status.replica_states.get("RUNNING", 0)
            timeline.append({"t": round(time.monotonic() - started, 1), "heavy_replicas": running})
            time.sleep(1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    history = ROOT / "results" / "autoscaling_history.csv"
    step = max(1, streams // 3)
    shape = ["--step-users", str(step), "--step-seconds", str(step_seconds), "--steps", "3"]
    run_locust(
        url, "StreamUser", step, step_seconds * 3, STREAM_RATE, history_csv=history, shape=shape
    )
    load_ended = time.monotonic() - started
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and timeline[-1]["heavy_replicas"] > 1:
        time.sleep(1)
    time.sleep(2)
    stop.set()
    sampler.join()
    _merge_latency(timeline, history, started)
    plots.autoscaling(timeline, ROOT / "results" / "autoscaling.png")
    replicas = [p["heavy_replicas"] for p in timeline]
    return {
        "streams_max": step * 3,
        "load_ended_at_s": round(load_ended, 1),
        "heavy_replicas_max": max(replicas),
        "heavy_replicas_end": replicas[-1],
        "scaled_up_at_s": next((p["t"] for p in timeline if p["heavy_replicas"] > 1), None),
        "scaled_down_at_s": next(
            (p["t"] for p in timeline if p["t"] > load_ended and p["heavy_replicas"] == 1), None
        ),
        "timeline": timeline,
    }


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
                if row["Name"] == "Aggregated":
                    point["users"] = int(row["User Count"])


def _app(config: dict) -> dict:
    (app,) = [a for a in config["applications"] if a["name"] == APP]
    return app


def _deployment(config: dict, name: str) -> dict:
    return next(d for d in _app(config)["deployments"] if d["name"] == name)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def table(results: dict) -> str:
    """The headline figures of the parts that ran, with their targets, as Markdown."""
    rows: list[tuple[str, str, str]] = []
    if o := results.get("overhead"):
        latency = o["latency_ms"]
        for name, label in [
            ("stage_one", "Stage one"),
            ("noop_serve", "No-op Serve"),
            ("bare_starlette", "Bare Starlette"),
            ("naive_single_stage", "Naive single-stage"),
        ]:
            rows.append((f"{label} p50 / p99, sequential", _p50_p99(latency[name]), ""))
        rows += [
            ("Stage one p50 / no-op Serve p50", f"{o['stage_one_p50_vs_noop_serve']}x", "<= 1.5x"),
            ("Stage one p50 / bare Starlette p50", f"{o['stage_one_p50_vs_bare_starlette']}x", ""),
            ("Naive single-stage p50 / stage one p50", f"{o['naive_p50_vs_stage_one_p50']}x", ""),
        ]
    if i := results.get("isolation"):
        ratio = f"{_p50_p99(i['saturated_ms'])} vs {_p50_p99(i['idle_ms'])}: "
        rows.append(
            (
                "Isolation: stage one saturated vs idle",
                ratio + f"{i['p99_saturated_vs_idle']}x (p99)",
                "<= 1.2x",
            )
        )
    if b := results.get("batching"):
        per_s = b["records_per_s"]
        rows.append(
            (
                "Batching: records/s, batched vs max_batch_size=1 (calls still shared)",
                f"{per_s['batched']} vs {per_s['model_unbatched']}: "
                f"{b['batched_vs_model_unbatched']}x",
                "",
            )
        )
        rows.append(
            (
                "Batching: records/s, batched vs 1 per pass and per call",
                f"{per_s['batched']} vs {per_s['unbatched']}: {b['batched_vs_unbatched']}x",
                ">= 3x",
            )
        )
    if t := results.get("throughput"):
        held = t["held"]
        for name, label in [
            ("stage_one", "stage one"),
            ("noop_serve", "no-op Serve"),
            ("naive_single_stage", "naive single-stage"),
        ]:
            rate = f"{held[name]['requests_per_s']:g} req/s"
            rows.append((f"Bounded throughput: {label}", rate, ""))
        rows += [
            (
                "Bounded throughput: stage one / no-op",
                f"{t['stage_one_vs_noop_serve']}x",
                ">= 0.6x",
            ),
            ("10/s streams held (and stage two p99 <= 2 s)", str(held["streams"]["users"]), ""),
        ]
    if a := results.get("autoscaling"):
        scaled = (
            f"1 -> {a['heavy_replicas_max']} at {a['scaled_up_at_s']} s; "
            f"{a['heavy_replicas_end']} at {a['scaled_down_at_s']} s "
            f"(load ended at {a['load_ended_at_s']} s)"
        )
        rows.append(("Autoscaling: heavy replicas", scaled, ""))
    lines = ["| Measure | Result | Target |", "|---|---|---|"]
    lines += [f"| {measure} | {result} | {target} |" for measure, result, target in rows]
    return "\n".join(lines)


def _p50_p99(figures: dict) -> str:
    return f"{figures['p50']} / {figures['p99']} ms"


PARTS = ("overhead", "cpu", "isolation", "batching", "throughput", "autoscaling")


def _run_part(part: str, url: str, config: dict, example: dict, args, results: dict) -> dict:
    if part == "overhead":
        with bare_starlette() as bare:
            return overhead_and_payoff(url, bare, example, args.requests)
    if part == "cpu":
        return cpu_split(url, example, args.requests)
    if part == "isolation":
        return isolation(url, example, args.requests)
    if part == "batching":
        return batching(url, config, example, records=960)  # under admission's 1000
    if part == "throughput":
        return bounded_throughput(url, args.trial_seconds)
    if part == "autoscaling":
        held = results.get("throughput", {}).get("held", {}).get("streams", {}).get("users", 0)
        # Up to three times the streams held under the bound: past what the machine
        # holds, so stage-two calls queue and the autoscaler has a reason to act.
        return autoscaling(url, streams=max(9, 3 * held), step_seconds=20)
    raise SystemExit(f"unknown part {part!r}; parts: {', '.join(PARTS)}")


def _headline(result: dict) -> dict:
    """A part's result without its long lists, for progress output."""
    return {k: v for k, v in result.items() if k not in ("timeline", "held")} | (
        {"held": {k: v["requests_per_s"] for k, v in result["held"].items()}}
        if "held" in result
        else {}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="Sequential requests each.")
    parser.add_argument("--trial-seconds", type=float, default=15, help="Each locust trial.")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench.json")
    parser.add_argument("--parts", default=",".join(PARTS), help="Which parts, comma-separated.")
    args = parser.parse_args()
    parts = args.parts.split(",")
    # Backgrounded, this process ignores SIGINT: let SIGTERM run the clean-up below too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    config = bench_config(free_port())
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    # Logical CPUs: the apps side by side ask for more than two, and share the real two.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        print("deploying the service and its baselines...", flush=True)
        deploy_config(config)
        wait_healthy(url, 60)
        example = httpx.get(f"{url}/v1/models").json()["example_request"]
        results: dict = {}
        for part in parts:
            results[part] = _run_part(part, url, config, example, args, results)
            print(json.dumps({part: _headline(results[part])}), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    write_results(args.out, results, echo=False)
    print(table(results))
    args.out.with_suffix(".md").write_text(table(results) + "\n")


if __name__ == "__main__":
    main()
