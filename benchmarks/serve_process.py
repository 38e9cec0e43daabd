"""Start ``serve run <config>`` as ``make run`` does (``ops/serve_local.py``: the fast
path's environment, HAProxy cleaned up after) as a child process, wait until healthy,
stop it by PID."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


@contextlib.contextmanager
def serve_run(config: Path, url: str, timeout_s: float = 180) -> Iterator[subprocess.Popen]:
    """The service of ``config`` at ``url``, for the duration of the ``with`` block; yields
    the process (its cluster's processes are its descendants)."""
    command = [sys.executable, "-m", "ops.serve_local", str(config)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            wait_healthy(url, timeout_s, process, log)
            yield process
        finally:
            # SIGTERM reaches `serve run`, which stops its cluster (SIGINT would not).
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_healthy(
    url: str, timeout_s: float, process: subprocess.Popen | None = None, log=None
) -> None:
    """Poll ``/healthz`` until 200; fail early if ``process`` (serving ``url``) exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"serve run exited:\n{log.read().decode()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise TimeoutError(f"{url} was not healthy after {timeout_s}s")
