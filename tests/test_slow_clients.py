"""Slow and idle clients at the front door (HAProxy): a request whose headers never end and
an idle keep-alive connection are each dropped within their configured time."""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

from ops.cluster_env import fast_path_env

CLIENT_TIMEOUT_S = float(fast_path_env()["RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S"])
UNFINISHED_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # no blank line: never ends
ONE_REQUEST = UNFINISHED_HEADERS + b"\r\n"


def _closed_after(port: int, payload: bytes) -> tuple[float, bytes]:
    """Send ``payload``, then read until the server closes: how long that took, and what it
    sent."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)
        started = time.monotonic()
        sock.settimeout(3 * CLIENT_TIMEOUT_S)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return time.monotonic() - started, received


def test_unfinished_headers_and_idle_keep_alive_connections_are_dropped(serve_url, service_config):
    port = service_config["http_options"]["port"]
    keep_alive_s = service_config["http_options"]["keep_alive_timeout_s"]
    with ThreadPoolExecutor(6) as pool:
        slow = [pool.submit(_closed_after, port, UNFINISHED_HEADERS) for _ in range(5)]
        idle = pool.submit(_closed_after, port, ONE_REQUEST)
        for elapsed, received in (f.result() for f in slow):
            assert received.startswith(b"HTTP/1.1 408"), received[:80]
            assert CLIENT_TIMEOUT_S - 1 <= elapsed <= CLIENT_TIMEOUT_S + 5, elapsed
        elapsed, received = idle.result()
    assert received.startswith(b"HTTP/1.1 200"), received[:80]
    assert keep_alive_s - 1 <= elapsed <= keep_alive_s + 5, elapsed
