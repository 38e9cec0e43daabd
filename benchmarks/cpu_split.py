"""Where the CPU goes per request: each process's CPU time over a run of requests.

On a small machine the bound is CPU, and a Serve call costs its caller and callee CPU
whatever it carries; this shows how much each replica and the proxy spend per request.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import psutil


def cpu_ms_per_request(run: Callable[[], int]) -> dict[str, float]:
    """CPU milliseconds per request by process name, over ``run()`` (returns requests)."""
    before = _cpu_seconds()
    started = time.monotonic()
    requests = run()
    wall = time.monotonic() - started
    after = _cpu_seconds()
    spent = Counter()
    for pid, (name, seconds) in after.items():
        spent[name] += seconds - before.get(pid, (name, 0.0))[1]
    split = {name: round(s * 1000 / requests, 2) for name, s in spent.most_common() if s > 0.01}
    split["wall_ms"] = round(wall * 1000 / requests, 2)
    return split


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process, named by its title (Ray's name for a replica)."""
    seconds = {}
    for process in psutil.process_iter(["cmdline", "name"]):
        try:
            times = process.cpu_times()
            title = " ".join(process.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        name = title.split(".")[0] if title.startswith("ray::") else "other"
        seconds[process.pid] = (name.strip(), times.user + times.system)
    return seconds
