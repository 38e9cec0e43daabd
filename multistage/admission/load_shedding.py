"""Stage one's load shedding: refuse a request that finds the event loop backlogged.

Stage one runs in the ingress's event loop without pausing (parse, XGBoost, answer), so
requests never wait on each other inside a handler: a backlog shows only as time the
loop spends without coming back to its timers. A ticker marks each time the loop does;
a request that arrives when the last mark is older than the bound has waited behind at
least that much work, and is answered 503 at once instead: a backlog is cleared by
cheap refusals, and a short burst is served. (Node's ``toobusy`` sheds on the same
signal.)
"""

from __future__ import annotations

import asyncio
import contextvars
import time

_TICK_EVERY_S = 0.01


class LoopBacklog:
    def __init__(self, shed_after_s: float) -> None:
        """Start the ticker; call from the event loop it watches."""
        self._shed_after_s = shed_after_s
        # Ticks well inside the bound, so an idle loop never reads as a backlog.
        self._tick_every_s = min(_TICK_EVERY_S, shed_after_s / 4)
        self._last_tick = time.monotonic()
        # Created outside any request's context: no client's disconnect cancels it.
        self._ticker = contextvars.Context().run(asyncio.create_task, self._tick_forever())

    def overloaded(self) -> bool:
        return time.monotonic() - self._last_tick > self._shed_after_s

    async def _tick_forever(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await asyncio.sleep(self._tick_every_s)
