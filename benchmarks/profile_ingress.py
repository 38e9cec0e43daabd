"""Where an ingress replica's CPU goes under sequential stage-one load: a py-spy profile.

    python -m benchmarks.profile_ingress [--seconds 20]      (make profile)

Starts a local cluster behind HAProxy with ``configs/local.yaml`` (as ``make run``),
sends sequential ``POST /v1/predict`` from this process while py-spy samples the
ingress replica, and writes ``results/ingress_profile.txt`` (py-spy's collapsed stacks)
and ``results/ingress_profile.json``: the share of the replica's active samples by part
of the request path, each sample going to the deepest frame that names a part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

from benchmarks.bench_config import RESULTS, local_config
from benchmarks.sequential import timed_posts
from benchmarks.serve_process import wait_healthy
from multistage_client import paths
from ops.local_cluster import deploy_config, local_cluster
from ops.ports import free_port

# Parts of the path, by a fragment of a frame's file or function; the deepest frame
# that matches one names the sample's part (so XGBoost under our handler is XGBoost).
PARTS = [
    ("stage one: XGBoost", ("xgboost",)),
    ("record: image decode", ("PIL", "decode_image")),
    ("record: JSON + validation", ("pydantic", "records.py")),
    ("ticket id (HMAC)", ("tickets/ids.py",)),
    ("metrics", ("metrics",)),
    ("stage-two submissions and waits (Serve calls)", ("submissions.py", "ticket_watch.py")),
    ("Serve handle calls, routing", ("serve/handle.py", "request_router", "router.py")),
    ("Ray core worker, gRPC", ("_raylet", "grpc")),
    ("HTTP server (uvicorn, h11)", ("uvicorn", "h11", "httptools")),
    ("FastAPI / Starlette", ("fastapi", "starlette")),
    ("Serve replica bookkeeping", ("ray/serve/_private",)),
    ("our handler", ("deployments/ingress.py", "multistage/")),
    ("asyncio event loop", ("asyncio",)),
]


def part_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for part, fragments in PARTS:
            if any(fragment in frame for fragment in fragments):
                return part
    return "other"


def ingress_pid() -> int:
    for process in psutil.process_iter(["name", "cmdline"]):
        if "ServeReplica:multistage:Ingress" in " ".join(process.info["cmdline"] or []):
            return process.pid
    raise RuntimeError("no ingress replica is running")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS / "ingress_profile")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = args.out.with_suffix(".txt")

    config = local_config()
    config["http_options"]["port"] = free_port()
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    with local_cluster("haproxy", num_cpus=4, log_to_driver=False):
        deploy_config(config)
        wait_healthy(url, 60)
        example = httpx.get(f"{url}{paths.MODELS}").json()["example_request"]
        done = threading.Event()
        sent = []

        def load() -> None:
            with httpx.Client(timeout=30) as client:
                timed_posts(client, f"{url}{paths.PREDICT}", example, 50)  # warm-up
                while not done.is_set():
                    sent.extend(timed_posts(client, f"{url}{paths.PREDICT}", example, 20))

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(3)
        py_spy = Path(sys.executable).with_name("py-spy")  # installed beside this Python
        subprocess.run(
            [str(py_spy), "record", "--pid", str(ingress_pid()), "--rate", "250",
             "--duration", f"{args.seconds:g}", "--format", "raw", "--nonblocking",
             "--output", str(raw)],
            check=True, capture_output=True,
        )  # fmt: skip
        done.set()
        loader.join()

    samples = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[part_of(stack)] += int(count)
    total = sum(samples.values())
    shares = {part: round(100 * n / total, 1) for part, n in samples.most_common()}
    result = {"active_samples": total, "requests": len(sent), "share_percent": shares}
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
