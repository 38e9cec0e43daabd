"""A Redis server of our own on loopback, for the tests and the fault benchmark: the
ticket journal's Redis backend against the real thing (Debian's ``redis-server``;
``make redis`` installs it).

Appends every write to its log (``appendfsync everysec``), so a restart keeps what the
journal wrote, as a production Redis for the journal should.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from ops.ports import free_port


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """``start()``, ``stop()`` and start again on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = data_dir
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH: run `make redis`")
        self._dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            self._process.wait(timeout=30)
        self._process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
