"""What every benchmark shares: the service it measures, and how it reports figures."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from benchmarks import machine
from benchmarks.bench_config import LOCAL_CONFIG
from benchmarks.serve_process import serve_run

LOCAL_URL = "http://127.0.0.1:8000"


def run_benchmark(doc: str, measure: Callable[[str, int], dict], requests: int, out: str) -> None:
    """The command line every benchmark shares: measure, then write and print the results."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--url", help="a running service; default: start the local config")
    parser.add_argument("--out", type=Path, default=Path(out))
    args = parser.parse_args()
    with service(args.url) as url:
        results = measure(url, args.requests)
    write_results(args.out, results)


@contextlib.contextmanager
def service(url: str | None) -> Iterator[str]:
    """``url`` if given; otherwise ``serve run configs/local.yaml``, stopped afterwards."""
    if url:
        yield url
        return
    with serve_run(LOCAL_CONFIG, LOCAL_URL):
        yield LOCAL_URL


def percentiles(values: list[float]) -> dict:
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": round(p50, 2), "p90": round(p90, 2), "p99": round(p99, 2)}


def write_results(path: Path, results: dict, echo: bool = True) -> None:
    """Adds the machine, writes ``path`` as JSON, and prints it (unless not ``echo``)."""
    results["machine"] = machine.describe()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    if echo:
        print(json.dumps(results, indent=2))
