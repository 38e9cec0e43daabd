"""Waits on tickets, shared: one wait of an ingress replica stands for every client of
it waiting on those tickets, and wakes when any of them ends."""

from __future__ import annotations

import asyncio
import contextlib


class Waiters:
    """Shared waits, by the ticket ids they wait on (known here or not yet)."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future]] = {}

    async def woken_or_timeout(self, ticket_ids: list[str], timeout_s: float) -> None:
        """Until one of the tickets is woken, or ``timeout_s`` passes."""
        woken = asyncio.get_running_loop().create_future()
        for ticket_id in ticket_ids:
            self._waiting.setdefault(ticket_id, []).append(woken)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken, timeout=timeout_s)
        finally:
            self._stop_waiting(ticket_ids, woken)

    def wake(self, ticket_id: str) -> None:
        """Wake every wait on the ticket (it ended, or is no longer held here)."""
        for woken in self._waiting.pop(ticket_id, ()):
            if not woken.done():
                woken.set_result(None)

    def _stop_waiting(self, ticket_ids: list[str], woken: asyncio.Future) -> None:
        for ticket_id in ticket_ids:
            waiting = self._waiting.get(ticket_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(woken)
                if not waiting:
                    del self._waiting[ticket_id]
