"""The ticket store: submits stage two and holds its result per ticket.

The store, not the ingress, makes the stage-two call, so the call's result is owned
by this long-lived replica: any ingress replica can resolve any ticket, and a ticket
outlives the ingress replica that issued it.

``submit`` only records the ticket and queues the record. A dispatcher task makes the
heavy calls, and waiting for a heavy replica to accept one happens in a task per
ticket: on the request path it made stage one ten times slower with a full heavy queue.
The dispatcher is started with the replica, outside any request, because Ray cancels a
cancelled request's calls recursively, down to calls made by sub-requests that have
already returned: made inside ``submit``, stage two would die with a client's
disconnect from an event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from multistage.api import Prediction, TicketView
from multistage.records import Record


def new_ticket_id() -> str:
    """128 random bits, URL-safe: unguessable, and says nothing about other tickets."""
    return secrets.token_urlsafe(16)


@dataclass
class _Ticket:
    submitted_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    ref: ray.ObjectRef | None = None  # stage two's result, once a replica took the call
    task: asyncio.Task | None = None  # held: the event loop keeps only weak references
    finished_at: float | None = None
    latency_ms: float | None = None
    error: str | None = None


@serve.deployment(
    num_replicas=1,
    # Long-polls wait here: they must never crowd out submissions.
    max_ongoing_requests=2000,
    ray_actor_options={"num_cpus": 0.1},
)
class TicketStore:
    async def __init__(self, heavy: DeploymentHandle, result_ttl_s: float) -> None:
        # Tickets live in this replica's memory: a second replica would hold half of them.
        world_size = serve.get_replica_context().world_size
        if world_size != 1:
            raise ValueError(f"TicketStore must run exactly one replica, not {world_size}")
        self._heavy = heavy
        self._ttl_s = result_ttl_s
        self._tickets: dict[str, _Ticket] = {}
        # Finished tickets in finish order; with one TTL that is also expiry order.
        self._finished: deque[tuple[float, str]] = deque()
        self._undispatched: asyncio.Queue[tuple[str, _Ticket, Record]] = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch())

    async def submit(self, record: Record) -> str:
        """Start stage two for ``record``; returns its ticket id."""
        self._evict_expired()
        return self._submit(record)

    async def submit_many(self, records: list[Record]) -> list[str]:
        """One ticket per record; each record joins the heavy model's batches on its own."""
        self._evict_expired()
        return [self._submit(record) for record in records]

    def _submit(self, record: Record) -> str:
        ticket_id = new_ticket_id()
        ticket = _Ticket()
        self._tickets[ticket_id] = ticket
        self._undispatched.put_nowait((ticket_id, ticket, record))
        return ticket_id

    async def fetch(self, ticket_id: str, wait_s: float = 0.0) -> TicketView | None:
        """The ticket's state, waiting up to ``wait_s`` for it to finish; None if unknown."""
        self._evict_expired()
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            return None
        if not ticket.done.is_set() and wait_s > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ticket.done.wait(), timeout=wait_s)
        return await self._view(ticket_id, ticket)

    async def _dispatch(self) -> None:
        while True:
            ticket_id, ticket, record = await self._undispatched.get()
            # Created here, the task (and the call it makes) belongs to no client's request.
            ticket.task = asyncio.create_task(self._follow(ticket_id, ticket, record))

    async def _follow(self, ticket_id: str, ticket: _Ticket, record: Record) -> None:
        try:
            response = self._heavy.predict.remote(record)
            ticket.ref = await response._to_object_ref()
            await ticket.ref  # raises what the model raised
        except asyncio.CancelledError:
            ticket.error = "stage two was cancelled"
            raise
        except Exception as error:  # noqa: BLE001 - any failure ends the ticket, with its reason
            ticket.error = _reason(error)
        finally:
            # Every ticket finishes, so every ticket expires: none stays pending forever.
            ticket.latency_ms = (time.perf_counter() - ticket.started) * 1000
            ticket.finished_at = time.time()
            self._finished.append((ticket.finished_at + self._ttl_s, ticket_id))
            ticket.done.set()

    async def _view(self, ticket_id: str, ticket: _Ticket) -> TicketView:
        view = TicketView(
            ticket=ticket_id,
            status="pending",
            submitted_at=_utc(ticket.submitted_at),
        )
        if ticket.finished_at is None:
            return view
        view.finished_at = _utc(ticket.finished_at)
        if ticket.error is not None:
            view.status, view.error = "failed", ticket.error
            return view
        prediction: Prediction = await ticket.ref
        view.status = "completed"
        view.result = prediction.model_copy(update={"latency_ms": round(ticket.latency_ms, 3)})
        return view

    def _evict_expired(self) -> None:
        """Drop tickets past their TTL; dropping the last ref frees the object store copy."""
        now = time.time()
        while self._finished and self._finished[0][0] <= now:
            _, ticket_id = self._finished.popleft()
            self._tickets.pop(ticket_id, None)


def _reason(error: Exception) -> str:
    """One line saying why stage two failed, without a remote traceback."""
    cause = error.cause if isinstance(error, ray.exceptions.RayTaskError) else error
    return f"{type(cause).__name__}: {cause}"[:500]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)
