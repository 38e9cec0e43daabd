"""The benchmark: stage one against its baselines, side by side, in parts.

    make bench [PARTS="sequential throughput"]   (python -m benchmarks.bench --parts ...)
    make bench-report                            (python -m benchmarks.bench --report)

For each cluster (``CLUSTERS``: behind Serve's HAProxy ingress as ``make run``, behind
Serve's Python proxy, and HAProxy with its per-request metrics on) it starts a local Ray
cluster once, deploys the multistage app (``configs/local.yaml``) with two baselines
beside it, runs the parts asked for that run on that cluster (``benchmarks/parts/``),
and stops everything it started. Each part's figures are saved the moment it ends
(``results/bench/<cluster>/<part>.json``); a part that fails is reported and the next
one runs. The report (``results/bench/report.md``, ``report.json`` and plots beside it)
is made from the saved figures alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from benchmarks import plots, stage_two
from benchmarks.bench_config import RESULTS, ROOT, bench_config
from benchmarks.load import LoadResult
from benchmarks.load_search import BOUND
from benchmarks.parts import PARTS, Part, Service
from benchmarks.runner import SavedResults, report, run_parts
from benchmarks.serve_process import wait_healthy
from multistage.tickets.ids import SigningArgs, new_secret
from multistage_client import paths
from ops.local_cluster import deploy_config, local_cluster
from ops.ports import free_port

# cluster: (Serve's proxy, environment beside the fast path's)
CLUSTERS = {
    "haproxy": ("haproxy", {}),
    "python_proxy": ("python", {}),
    "haproxy_metrics": ("haproxy", {"RAY_SERVE_HAPROXY_METRICS_ENABLED": "1"}),
}


def main() -> None:
    args = _arguments()
    saved = SavedResults(args.results)
    if args.report:
        print(write_report(saved))
        return
    parts = _parts_named(args.parts)
    # Backgrounded, this process ignores SIGINT: let SIGTERM run the clean-up too (each
    # local cluster makes SIGTERM unwind through its own clean-up as well).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = []
    secret = new_secret()
    with bare_starlette() if PARTS["sequential"] in parts else contextlib.nullcontext() as bare:
        for cluster in args.clusters.split(","):
            if wanted := [part for part in parts if cluster in part.clusters]:
                service_args = (args.requests, args.trial_seconds, secret, bare)
                with running(cluster, service_args) as service:
                    failures = run_parts(wanted, service, cluster, saved)
                failed += [f"{name} ({cluster})" for name in failures]
    print(write_report(saved))
    if failed:
        raise SystemExit(f"parts that failed: {', '.join(failed)}")


@contextlib.contextmanager
def running(cluster: str, service_args: tuple) -> Iterator[Service]:
    """A local cluster behind ``cluster``'s proxy, the service and its baselines deployed."""
    requests, trial_seconds, secret, bare = service_args
    proxy, env = CLUSTERS[cluster]
    config = bench_config(free_port())
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    # The isolation part's flood signs ticket ids with the app's secret.
    env = {SigningArgs().secret_env: secret.hex()} | env
    # Logical CPUs: the apps side by side ask for more than two, and share the real two.
    with local_cluster(proxy, env, num_cpus=12, log_to_driver=False):
        print(f"== {cluster}: deploying the service and its baselines...", flush=True)
        deploy_config(config)
        wait_healthy(url, 60)
        stage_two.store.cache_clear()  # a handle into this cluster, not the last one
        example = httpx.get(f"{url}{paths.MODELS}").json()["example_request"]
        yield Service(
            url=url,
            config=config,
            example=example,
            requests=requests,
            trial_seconds=trial_seconds,
            secret=secret,
            bare=bare if cluster == "haproxy" else None,
        )


def write_report(saved: SavedResults) -> str:
    """The report and plots from the saved figures, beside them: ``report.md``, every
    saved file in one ``report.json``, ``latency_vs_load.png``."""
    table = report(list(PARTS.values()), saved)
    saved.folder.mkdir(parents=True, exist_ok=True)
    (saved.folder / "report.md").write_text(table + "\n")
    (saved.folder / "report.json").write_text(json.dumps(saved.runs(), indent=2))
    _plot_throughput(saved.figures(), saved.folder / "latency_vs_load.png")
    return table


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


def _plot_throughput(figures: dict[str, dict[str, dict]], out: Path) -> None:
    """Stage one's and the no-op app's latency against load, for each cluster."""
    lines = {
        f"{name} ({cluster})": [LoadResult(**trial) for trial in held["trials"]]
        for cluster, parts in figures.items()
        for name, held in parts.get("throughput", {}).get("held", {}).items()
    }
    if lines:
        plots.latency_vs_load(lines, BOUND.p99_ms, out)


def _parts_named(names: str) -> list[Part]:
    wanted = names.replace(",", " ").split()
    if unknown := sorted(set(wanted) - set(PARTS)):
        raise SystemExit(f"unknown parts {unknown}; parts: {' '.join(PARTS)}")
    return [part for name, part in PARTS.items() if name in wanted]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default=" ".join(PARTS), help=f"Which parts, by name: {' '.join(PARTS)}."
    )
    parser.add_argument(
        "--clusters", default=",".join(CLUSTERS), help="Which clusters, comma-separated."
    )
    parser.add_argument("--requests", type=int, default=300, help="Sequential requests each.")
    parser.add_argument("--trial-seconds", type=float, default=15, help="Each locust trial.")
    parser.add_argument("--results", type=Path, default=RESULTS / "bench", help="Saved parts.")
    parser.add_argument(
        "--report", action="store_true", help="Only make the report from the saved parts."
    )
    args = parser.parse_args()
    if unknown := sorted(set(args.clusters.split(",")) - set(CLUSTERS)):
        parser.error(f"unknown clusters {unknown}; clusters: {','.join(CLUSTERS)}")
    return args


if __name__ == "__main__":
    main()
