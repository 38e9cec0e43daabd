"""The ticket store: submits stage two, follows each ticket to its end, holds its result.

The store, not the ingress, makes the stage-two call, so the call's result is owned
by this long-lived replica: any ingress replica can resolve any ticket, and a ticket
outlives the ingress replica that issued it.

``submit`` only records the ticket and queues it. A dispatcher task makes the heavy
calls, and waiting for a heavy replica to accept one happens in a task per ticket: on
the request path it made stage one ten times slower with a full heavy queue. The
dispatcher is started with the replica, outside any request, because Ray cancels a
cancelled request's calls recursively, down to calls made by sub-requests that have
already returned: made inside ``submit``, stage two would die with a client's
disconnect from an event stream.

What a fault costs: a heavy replica's death retries its tickets (``max_attempts``);
this replica's death loses every ticket it holds (they then read ``lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psutil
import ray
from pydantic import BaseModel, Field, model_validator
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from multistage.api import Prediction, TicketStatus, TicketView
from multistage.deadline import DeadlinePassed, seconds_left
from multistage.records import Record
from multistage.ticket_ids import TicketIds


class TicketPolicy(BaseModel):
    """How many tickets the store takes, how long it keeps them, how hard it tries."""

    result_ttl_s: float = Field(600.0, gt=0, description="How long finished tickets are kept.")
    max_unfinished: int = Field(
        1000, gt=0, description="Past this many pending or running tickets, new work is rejected."
    )
    max_held: int = Field(
        100_000, gt=0, description="Most tickets held; past it the oldest finished are released."
    )
    max_attempts: int = Field(3, ge=1, description="Calls per ticket when heavy replicas die.")
    timeout_s: float = Field(300.0, gt=0, description="A ticket unfinished after this fails.")

    @model_validator(mode="after")
    def _unfinished_fit(self) -> TicketPolicy:
        if self.max_unfinished > self.max_held:
            raise ValueError("max_unfinished must not exceed max_held")
        return self


@dataclass(frozen=True)
class Receipt:
    """The store's answer to a submission: a ticket, or why stage two refused the work."""

    ticket: str | None
    rejection: str | None = None


class StoreStats(BaseModel):
    held: int = Field(description="Tickets in memory, finished ones included.")
    unfinished: int
    rss_bytes: int = Field(description="Resident memory of the store's process.")


@dataclass
class _Ticket:
    id: str
    record: Record | None  # kept until the ticket ends, for retries
    deadline: float | None
    submitted_at: float
    status: TicketStatus = "pending"
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    ref: ray.ObjectRef | None = None  # stage two's result, once a replica took the call
    error: str | None = None
    task: asyncio.Task | None = None  # held: the event loop keeps only weak references
    done: asyncio.Event = field(default_factory=asyncio.Event)


@serve.deployment(
    num_replicas=1,
    # Long-polls wait here: they must never crowd out submissions.
    max_ongoing_requests=2000,
    ray_actor_options={"num_cpus": 0.1},
)
class TicketStore:
    async def __init__(self, heavy: DeploymentHandle, policy: TicketPolicy, secret: bytes) -> None:
        # Tickets live in this replica's memory: a second replica would hold half of them.
        world_size = serve.get_replica_context().world_size
        if world_size != 1:
            raise ValueError(f"TicketStore must run exactly one replica, not {world_size}")
        # Ids issued before this moment came from a replica that is gone, with its tickets.
        self._started_at = time.time()
        self._heavy = heavy
        self._policy = policy
        self._ids = TicketIds(secret)
        self._tickets: dict[str, _Ticket] = {}
        self._unfinished = 0
        # Finished tickets in finish order; with one TTL that is also release order.
        self._finished: deque[tuple[float, str]] = deque()
        self._undispatched: asyncio.Queue[_Ticket] = asyncio.Queue()
        self._dispatcher = asyncio.create_task(self._dispatch())
        self._reaper = asyncio.create_task(self._release_expired_forever())

    async def submit(self, record: Record, deadline: float | None = None) -> Receipt:
        """Start stage two for ``record``, unless it must not start after ``deadline``."""
        return self._submit(record, deadline)

    async def submit_many(
        self, records: list[Record], deadline: float | None = None
    ) -> list[Receipt]:
        """One ticket per record; each record joins the heavy model's batches on its own."""
        return [self._submit(record, deadline) for record in records]

    async def fetch(self, ticket_id: str, wait_s: float = 0.0) -> TicketView | None:
        """The ticket's state, waiting up to ``wait_s`` for it to end; None if never issued."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            return self._forgotten(ticket_id)
        if ticket.finished_at is None and wait_s > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ticket.done.wait(), timeout=wait_s)
        return await self._view(ticket)

    async def cancel(self, ticket_id: str) -> TicketView | None:
        """Cancel an unfinished ticket: unstarted work never runs, running work is cancelled
        best-effort. Returns the ticket's state afterwards; None if never issued."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            return self._forgotten(ticket_id)
        if ticket.finished_at is None:
            if ticket.task is None:
                self._finish(ticket, "canceled", "canceled before stage two started")
            else:
                ticket.task.cancel()
                await ticket.done.wait()
        return await self._view(ticket)

    async def stats(self) -> StoreStats:
        return StoreStats(
            held=len(self._tickets),
            unfinished=self._unfinished,
            rss_bytes=psutil.Process().memory_info().rss,
        )

    def _submit(self, record: Record, deadline: float | None) -> Receipt:
        if self._unfinished >= self._policy.max_unfinished:
            limit = self._policy.max_unfinished
            return Receipt(None, f"stage two already has {limit} unfinished tickets, its limit")
        self._make_room()
        now = time.time()
        ticket = _Ticket(self._ids.issue(now), record, deadline, submitted_at=now)
        self._tickets[ticket.id] = ticket
        self._unfinished += 1
        self._undispatched.put_nowait(ticket)
        return Receipt(ticket.id)

    async def _dispatch(self) -> None:
        while True:
            ticket = await self._undispatched.get()
            if ticket.finished_at is None:  # not canceled while it waited here
                # Created here, the task (and the calls it makes) belong to no client's request.
                ticket.task = asyncio.create_task(self._follow(ticket))

    async def _follow(self, ticket: _Ticket) -> None:
        """Run the ticket's stage two to an end: every ticket finishes, none hangs."""
        status: TicketStatus
        try:
            timeout_at = ticket.submitted_at + self._policy.timeout_s
            status, error = await asyncio.wait_for(
                self._attempt_until_settled(ticket), seconds_left(timeout_at)
            )
        except asyncio.TimeoutError:
            status, error = "failed", f"stage two did not end within {self._policy.timeout_s:g} s"
        except asyncio.CancelledError:
            status, error = "canceled", "canceled by the client"
        except Exception as failure:  # noqa: BLE001 - any failure ends the ticket, with its reason
            status, error = "failed", _reason(failure)
        self._finish(ticket, status, error)

    async def _attempt_until_settled(self, ticket: _Ticket) -> tuple[TicketStatus, str | None]:
        """Call stage two, again when a heavy replica dies under the call (not when the model
        fails: that answer would be the same)."""
        for attempt in range(1, self._policy.max_attempts + 1):
            ticket.attempts = attempt
            response = self._heavy.predict.remote(ticket.record, ticket.deadline)
            try:
                ticket.ref = await self._accepted(response, ticket.deadline)
                ticket.status, ticket.started_at = "running", ticket.started_at or time.time()
                await ticket.ref
                return "completed", None
            except asyncio.CancelledError:
                response.cancel()
                raise
            except DeadlinePassed as error:
                return "expired", str(error)
            except RayActorError as error:
                died = _reason(error)
                ticket.status, ticket.ref = "pending", None
            except RayTaskError as error:
                if isinstance(error.cause, DeadlinePassed):
                    return "expired", str(error.cause)
                return "failed", _reason(error)
        attempts = self._policy.max_attempts
        return "failed", f"stage two's replica died under each of {attempts} attempts: {died}"

    @staticmethod
    async def _accepted(response: DeploymentResponse, deadline: float | None) -> ray.ObjectRef:
        """The call's result ref, once a heavy replica takes it; cancelled at the deadline."""
        if deadline is None:
            return await response._to_object_ref()
        try:
            return await asyncio.wait_for(response._to_object_ref(), seconds_left(deadline))
        except asyncio.TimeoutError:
            response.cancel()
            raise DeadlinePassed() from None

    def _finish(self, ticket: _Ticket, status: TicketStatus, error: str | None) -> None:
        ticket.status, ticket.error = status, error
        ticket.finished_at = time.time()
        ticket.record = None
        if status != "completed":
            ticket.ref = None
        self._unfinished -= 1
        self._finished.append((ticket.finished_at + self._policy.result_ttl_s, ticket.id))
        ticket.done.set()

    async def _view(self, ticket: _Ticket) -> TicketView:
        view = TicketView(
            ticket=ticket.id,
            status=ticket.status,
            submitted_at=_utc(ticket.submitted_at),
            started_at=_utc(ticket.started_at),
            finished_at=_utc(ticket.finished_at),
            attempts=ticket.attempts,
            error=ticket.error,
        )
        if ticket.status == "completed":
            prediction: Prediction = await ticket.ref
            latency_ms = (ticket.finished_at - ticket.submitted_at) * 1000
            view.result = prediction.model_copy(update={"latency_ms": round(latency_ms, 3)})
        return view

    def _forgotten(self, ticket_id: str) -> TicketView | None:
        """What became of a ticket this replica does not hold; None if it was never issued."""
        issued_at = self._ids.issued_at(ticket_id)
        if issued_at is None:
            return None
        longest_life = self._policy.timeout_s + self._policy.result_ttl_s
        if issued_at < self._started_at and issued_at + longest_life > time.time():
            return lost_view(ticket_id, issued_at, "the ticket store restarted after it was issued")
        return TicketView(
            ticket=ticket_id,
            status="expired",
            submitted_at=_utc(issued_at),
            error="its result was released after the TTL",
        )

    def _make_room(self) -> None:
        """Release the oldest finished tickets while the store is full."""
        while len(self._tickets) >= self._policy.max_held and self._finished:
            self._release_oldest()

    async def _release_expired_forever(self) -> None:
        interval = min(1.0, self._policy.result_ttl_s / 2)
        while True:
            now = time.time()
            while self._finished and self._finished[0][0] <= now:
                self._release_oldest()
            await asyncio.sleep(interval)

    def _release_oldest(self) -> None:
        # Dropping a ticket drops its ref, which frees stage two's result in Ray.
        _, ticket_id = self._finished.popleft()
        self._tickets.pop(ticket_id, None)


def lost_view(ticket_id: str, issued_at: float, why: str) -> TicketView:
    return TicketView(
        ticket=ticket_id,
        status="lost",
        submitted_at=_utc(issued_at),
        error=f"{why}; stage two's work for this ticket is lost: submit it again",
    )


def _reason(error: Exception) -> str:
    """One line saying why stage two failed, without a remote traceback."""
    cause = error.cause if isinstance(error, RayTaskError) else error
    return f"{type(cause).__name__}: {cause}"[:500]


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)
