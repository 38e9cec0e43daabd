"""Free TCP ports on this machine, for servers of our own (a Serve proxy, Redis)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
