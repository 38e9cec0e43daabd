"""Waiting for tickets to end, for every client of an ingress replica, in few store calls.

A long-poll or an event stream used to cost a store call each. Here each ticket that
clients of this replica wait on is covered by one shared wait call to the store: a
newly watched ticket joins the next call (calls leave at most every ``every_s``), a
call returns as soon as any of its tickets has ended, or after ``call_wait_s``, and its
other tickets join the next. Under load, many clients' tickets share each call; a
short ``call_wait_s`` and a cap on calls in flight keep waits on a backlogged stage
two merging into few calls, rather than one more every ``every_s``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

from multistage.tickets.wire import StoreLoad, WaitReply
from multistage_client.models import TicketView

logger = logging.getLogger("ray.serve")

WaitCall = Callable[[list[str], float], Awaitable[WaitReply]]
_RETRY_AFTER_FAILURE_S = 0.5
MAX_CALLS = 16


class TicketWatcher:
    def __init__(
        self,
        wait: WaitCall,
        *,
        every_s: float,
        call_wait_s: float,
        on_load: Callable[[StoreLoad], None],
    ) -> None:
        """``wait(ticket_ids, wait_s)`` asks the store for those that end within ``wait_s``."""
        self._wait = wait
        self._every_s = every_s
        self._call_wait_s = call_wait_s
        self._on_load = on_load
        self._waiters: dict[str, set[asyncio.Future[TicketView]]] = {}
        self._uncovered: set[str] = set()  # watched, but in no call in flight
        self._calls: set[asyncio.Task] = set()  # held: the loop keeps only weak references
        self._next_call: asyncio.TimerHandle | None = None
        self._last_call_at = float("-inf")

    async def ended(self, ticket: str, timeout_s: float) -> TicketView | None:
        """The ticket's view once it has ended; None if it has not within ``timeout_s``."""
        future = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(ticket, set())
        if not waiters:
            self._uncovered.add(ticket)
            self._schedule_call()
        waiters.add(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(ticket) is waiters:
                del self._waiters[ticket]
                self._uncovered.discard(ticket)

    def _schedule_call(self) -> None:
        if self._next_call is not None or not self._uncovered or len(self._calls) >= MAX_CALLS:
            return  # at the cap, the next call to return schedules one for them
        delay = max(0.0, self._last_call_at + self._every_s - time.monotonic())
        # In a fresh context: Serve cancels a call made in a request's context when that
        # client disconnects, and this call is every waiting client's.
        self._next_call = asyncio.get_running_loop().call_later(
            delay, self._call_now, context=contextvars.Context()
        )

    def _call_now(self) -> None:
        self._next_call = None
        ticket_ids = [t for t in self._uncovered if t in self._waiters]
        self._uncovered.clear()
        if ticket_ids:
            self._last_call_at = time.monotonic()
            task = asyncio.get_running_loop().create_task(self._call(ticket_ids))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, ticket_ids: list[str]) -> None:
        try:
            reply = await self._wait(ticket_ids, self._call_wait_s)
        except Exception:  # noqa: BLE001 - the store is down or slow: wait, then ask again
            logger.warning("a shared wait for %d tickets failed", len(ticket_ids), exc_info=True)
            await asyncio.sleep(_RETRY_AFTER_FAILURE_S)
        else:
            self._on_load(reply.load)
            for view in reply.ended:
                for future in self._waiters.pop(view.ticket, ()):
                    if not future.done():
                        future.set_result(view)
        self._calls.discard(asyncio.current_task())  # out of the count before scheduling
        self._uncovered.update(t for t in ticket_ids if t in self._waiters)
        self._schedule_call()
