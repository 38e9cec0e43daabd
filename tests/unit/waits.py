"""Waiting in the unit tests: until a condition holds, polled on the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], bool], timeout_s: float = 5) -> None:
    give_up_at = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up_at:
            raise TimeoutError("not true in time")
        await asyncio.sleep(0.005)
