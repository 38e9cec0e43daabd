"""Where the CPU goes per request: each process's CPU time over a run of requests.

On a small machine the bound is CPU, and a Serve call costs its caller and callee CPU
whatever it carries; this shows how much each replica, the proxy and Ray itself spend
per request.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable

import psutil

CLIENT = "client (this benchmark)"
WALL = "wall_ms"


def cpu_ms_per_request(run: Callable[[], int], apps: set[str]) -> dict[str, float]:
    """CPU milliseconds per request by process, over ``run()`` (returns requests made).

    Replicas of applications other than ``apps`` are idle bystanders here: left out.
    ``total`` sums the rest, the client included; ``wall_ms`` is the time per request.
    """
    before = _cpu_seconds()
    started = time.monotonic()
    requests = run()
    wall = time.monotonic() - started
    after = _cpu_seconds()
    spent = Counter()
    for pid, (name, seconds) in after.items():
        if _part_of(name, apps):
            spent[name] += seconds - before.get(pid, (name, 0.0))[1]
    split = {name: round(s * 1000 / requests, 2) for name, s in spent.most_common() if s > 0.01}
    split["total"] = round(sum(spent.values()) * 1000 / requests, 2)
    split[WALL] = round(wall * 1000 / requests, 2)
    return split


def _part_of(name: str, apps: set[str]) -> bool:
    if not name.startswith("ray::ServeReplica:"):
        return True
    return name.split(":")[3] in apps  # ray::ServeReplica:<app>:<deployment>


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process, named by what it is (Ray's title for its actors)."""
    seconds = {}
    for process in psutil.process_iter(["cmdline", "name"]):
        try:
            times = process.cpu_times()
            cmdline = process.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seconds[process.pid] = (_name(process, cmdline), times.user + times.system)
    return seconds


def _name(process: psutil.Process, cmdline: list[str]) -> str:
    title = " ".join(cmdline)
    if title.startswith("ray::"):
        return title.split(".")[0].split(" ")[0]
    if process.pid == os.getpid():
        return CLIENT
    if process.info["name"] == "haproxy":
        return "haproxy"
    if any(part in title for part in ("gcs_server", "raylet", "ray/dashboard", "ray/_private")):
        return "ray (gcs, raylet, agents)"
    return "other"
