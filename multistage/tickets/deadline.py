"""Stage-two deadlines: work that cannot start before its deadline is never run.

A deadline is an absolute wall-clock time (epoch seconds), so it means the same in
every process of the cluster.
"""

from __future__ import annotations

import time

from multistage_client.errors import MultistageError


class DeadlinePassed(MultistageError):
    """Stage two could not start before the request's deadline."""

    def __init__(self) -> None:
        super().__init__("the deadline passed before stage two started")


def has_passed(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def seconds_left(deadline: float) -> float:
    return max(0.0, deadline - time.time())
