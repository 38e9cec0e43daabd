"""Concurrent requests' calls to one deployment, sent as few handle calls as possible.

Every call through a DeploymentHandle costs the caller and the callee milliseconds of
CPU (routing, serialization, the actor call) whatever it carries; on a small machine
that, not the model, bounds throughput. A ``CallCoalescer`` sends an item at once
while fewer than ``max_in_flight`` calls are out, so an idle service adds no wait;
under load, items pile up behind the calls in flight and leave together in the next.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Backlogged(Exception):
    """More items wait for a call than the coalescer may hold: shed the load."""


class CallCoalescer(Generic[Item, Result]):
    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[list[Result]]],
        max_in_flight: int,
        max_items: int,
        max_waiting: int,
    ) -> None:
        """``call`` takes a list of items and answers one result per item, in order."""
        self._call = call
        self._max_in_flight = max_in_flight
        self._max_items = max_items
        self._max_waiting = max_waiting
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._in_flight: set[asyncio.Task] = set()  # held: the loop keeps only weak references

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """``item``'s result, to await; cancel it to drop the item if not yet sent.

        Raises ``Backlogged`` rather than queue past ``max_waiting``: a queue without a
        bound turns overload into unbounded latency instead of a fast "retry later".
        """
        if len(self._waiting) >= self._max_waiting:
            raise Backlogged()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._send_what_fits()
        return future

    def _send_what_fits(self) -> None:
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch = self._waiting[: self._max_items]
            del self._waiting[: self._max_items]
            batch = [(item, future) for item, future in batch if not future.done()]
            if batch:
                # In a fresh context: Serve ties a handle call to the request whose context
                # makes it, and cancels it with that request. A shared call must survive
                # any one client's disconnect.
                task = contextvars.Context().run(asyncio.create_task, self._send(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._call_ended)

    def _call_ended(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._send_what_fits()

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._call([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - each waiting request gets the failure
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
