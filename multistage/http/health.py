"""The application's health as ``GET /healthz`` reports it, read from Serve's controller at
most once per ``every_s`` per replica, whatever the rate of health checks.

Each read is a controller call (tens of milliseconds, up to a second under load): made
per request, fifty concurrent probes slowed a predict beside them to 0.59 s. A probe is
answered from the last reading; a reading older than ``every_s`` is refreshed in the
background, one refresh at a time. Only the very first probe waits for a reading.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

logger = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Health:
    ready: bool
    deployments: dict[str, str] = field(default_factory=dict)


class HealthReadings:
    def __init__(
        self,
        read: Callable[[], Awaitable[Health]],
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._every_s = every_s
        self._clock = clock
        self._last: Health | None = None
        self._read_at = float("-inf")
        self._refreshing: asyncio.Task | None = None

    async def current(self) -> Health:
        """The last reading; a stale one starts a refresh that later probes will see."""
        if self._clock() - self._read_at >= self._every_s and self._refreshing is None:
            # Outside any request's context: a probe that disconnects cancels no reading.
            self._refreshing = contextvars.Context().run(asyncio.create_task, self._refresh())
        if self._last is None:
            await asyncio.shield(self._refreshing)
        return self._last

    async def _refresh(self) -> None:
        try:
            self._last = await self._read()
        except Exception:  # noqa: BLE001 - a controller that cannot be read: not ready
            logger.warning("could not read the application's status", exc_info=True)
            self._last = Health(ready=False)
        finally:
            self._read_at = self._clock()
            self._refreshing = None
