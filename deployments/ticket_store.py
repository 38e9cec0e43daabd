"""The ticket store: submits stage two, follows each ticket to its end, holds its result.

The store, not the ingress, makes the stage-two call, so the call's result is owned
by this long-lived replica: any ingress replica can resolve any ticket, and a ticket
outlives the ingress replica that issued it.

``submit_many`` only records the tickets and queues them. A dispatcher task makes the
heavy calls, each carrying the tickets waiting at the time (up to ``records_per_call``:
a call's fixed cost, not the model, bounds a small machine), and waiting for a heavy
replica to accept a call happens in a task per call: on the request path it made stage
one ten times slower with a full heavy queue. The
dispatcher is started with the replica, outside any request, because Ray cancels a
cancelled request's calls recursively, down to calls made by sub-requests that have
already returned: made inside ``submit_many``, stage two would die with a client's
disconnect from an event stream.

What a fault costs: a heavy replica's death retries its tickets (``max_attempts``);
this replica's death loses every ticket it holds (they then read ``lost``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from multistage.metrics import TicketMetrics
from multistage.records import Record
from multistage.ticket_ids import TicketIds

logger = logging.getLogger("ray.serve")


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
    dispatch_wait_s: float = Field(
        0.0,
        ge=0,
        description="How long a ticket waits for others to share its stage-two call: "
        "milliseconds of stage-two latency for less CPU per ticket under load.",
    )
    records_per_call: int = Field(
        16,
        ge=1,
        description="Most tickets one stage-two call carries: under load, waiting tickets "
        "share calls, whose cost (not the model's) bounds a small machine.",
    )
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
    # Stage two's outcomes for the call that carried this ticket, once it ended, and which
    # one is this ticket's.
    ref: ray.ObjectRef | None = None
    index: int = 0
    error: str | None = None
    call: _Call | None = None  # set once dispatched
    # Both answers' labels, once known, for the revision metric.
    stage_one_label: str | None = None
    stage_two_label: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Call:
    """One stage-two call and the tickets it carries."""

    tickets: list[_Ticket]
    task: asyncio.Task | None = None  # held: the event loop keeps only weak references


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
        self._metrics = TicketMetrics()
        self._gauges = asyncio.create_task(self._report_unfinished_forever())

    async def submit_many(
        self, records: list[Record], deadlines: list[float | None]
    ) -> list[Receipt]:
        """Start stage two for each record, unless it must not start after its deadline.

        One ticket per record; each record joins the heavy model's batches on its own.
        """
        return [
            self._submit(record, deadline)
            for record, deadline in zip(records, deadlines, strict=True)
        ]

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
            if ticket.call is None:
                self._finish(ticket, "canceled", "canceled before stage two started")
            else:
                self._finish(ticket, "canceled", "canceled by the client")
                if all(t.finished_at is not None for t in ticket.call.tickets):
                    ticket.call.task.cancel()  # no one is left waiting for this call
        return await self._view(ticket)

    async def note_stage_one(self, ticket_ids: list[str], labels: list[str]) -> None:
        """Stage one's labels for these tickets, to count how often stage two revises them."""
        for ticket_id, label in zip(ticket_ids, labels, strict=True):
            ticket = self._tickets.get(ticket_id)
            if ticket is not None:  # else released already: too late to compare
                ticket.stage_one_label = label
                self._compare(ticket)

    async def stats(self) -> StoreStats:
        return StoreStats(
            held=len(self._tickets),
            unfinished=self._unfinished,
            rss_bytes=psutil.Process().memory_info().rss,
        )

    def _submit(self, record: Record, deadline: float | None) -> Receipt:
        if self._unfinished >= self._policy.max_unfinished:
            limit = self._policy.max_unfinished
            self._metrics.rejected("stage_two_full")
            return Receipt(None, f"stage two already has {limit} unfinished tickets, its limit")
        self._make_room()
        now = time.time()
        ticket = _Ticket(self._ids.issue(now), record, deadline, submitted_at=now)
        self._tickets[ticket.id] = ticket
        self._unfinished += 1
        self._undispatched.put_nowait(ticket)
        return Receipt(ticket.id)

    async def _dispatch(self) -> None:
        """Tickets waiting when a call leaves share it, up to ``records_per_call``."""
        while True:
            waiting = [await self._undispatched.get()]
            if self._undispatched.qsize() + 1 < self._policy.records_per_call:
                # Not a full call yet: let others join. A full one leaves at once, so the
                # wait never caps throughput.
                await asyncio.sleep(self._policy.dispatch_wait_s)
            while len(waiting) < self._policy.records_per_call and not self._undispatched.empty():
                waiting.append(self._undispatched.get_nowait())
            call = _Call([t for t in waiting if t.finished_at is None])  # not canceled meanwhile
            if call.tickets:
                logger.info("stage two call", extra={"tickets": [t.id for t in call.tickets]})
                # Created here, the task (and the calls it makes) belong to no client's request.
                call.task = asyncio.create_task(self._follow(call))
                for ticket in call.tickets:
                    ticket.call = call

    async def _follow(self, call: _Call) -> None:
        """Run the call's stage two to an end: every ticket finishes, none hangs."""
        status: TicketStatus
        try:
            timeout_at = call.tickets[0].submitted_at + self._policy.timeout_s
            await asyncio.wait_for(self._attempt_until_settled(call), seconds_left(timeout_at))
            return
        except asyncio.TimeoutError:
            status, error = "failed", f"stage two did not end within {self._policy.timeout_s:g} s"
        except asyncio.CancelledError:
            status, error = "canceled", "canceled by the client"
        except Exception as failure:  # noqa: BLE001 - any failure ends the ticket, with its reason
            status, error = "failed", _reason(failure)
        self._finish_unfinished(call.tickets, status, error)

    async def _attempt_until_settled(self, call: _Call) -> None:
        """Call stage two, again when a heavy replica dies under the call (not when the model
        fails: that answer would be the same)."""
        for attempt in range(1, self._policy.max_attempts + 1):
            tickets = [t for t in call.tickets if t.finished_at is None]
            if not tickets:
                return
            for ticket in tickets:
                ticket.attempts = attempt
            records = [t.record for t in tickets]
            response = self._heavy.predict_many.remote(
                records, [t.deadline for t in tickets], [t.id for t in tickets]
            )
            try:
                ref = await self._accepted(response, _latest([t.deadline for t in tickets]))
                now = time.time()
                for ticket in tickets:
                    if ticket.finished_at is None:  # else canceled while the call waited
                        ticket.status, ticket.started_at = "running", ticket.started_at or now
                outcomes = await ref
            except asyncio.CancelledError:
                response.cancel()
                raise
            except DeadlinePassed as error:
                self._finish_unfinished(tickets, "expired", str(error))
                return
            except RayActorError as error:
                died = _reason(error)
                logger.warning(
                    "stage two's replica died under a call; trying again",
                    extra={"tickets": [t.id for t in tickets], "attempt": attempt, "error": died},
                )
                for ticket in tickets:
                    ticket.status = "pending"
                continue
            for index, (ticket, outcome) in enumerate(zip(tickets, outcomes, strict=True)):
                if ticket.finished_at is None:  # else canceled while the call ran
                    ticket.ref, ticket.index = ref, index
                    if isinstance(outcome, Prediction):
                        ticket.stage_two_label = outcome.label
                        self._compare(ticket)
                    self._finish(ticket, *_ending(outcome))
            return
        attempts = self._policy.max_attempts
        error = f"stage two's replica died under each of {attempts} attempts: {died}"
        self._finish_unfinished(call.tickets, "failed", error)

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

    def _finish_unfinished(
        self, tickets: list[_Ticket], status: TicketStatus, error: str | None
    ) -> None:
        for ticket in tickets:
            if ticket.finished_at is None:
                self._finish(ticket, status, error)

    def _finish(self, ticket: _Ticket, status: TicketStatus, error: str | None) -> None:
        ticket.status, ticket.error = status, error
        ticket.finished_at = time.time()
        ticket.record = None
        if status != "completed":
            ticket.ref = None
        self._unfinished -= 1
        self._finished.append((ticket.finished_at + self._policy.result_ttl_s, ticket.id))
        ticket.done.set()
        time_to_result_ms = (ticket.finished_at - ticket.submitted_at) * 1000
        self._metrics.finished(status, time_to_result_ms if status == "completed" else None)
        logger.info(
            "ticket finished",
            extra={
                "ticket": ticket.id,
                "status": status,
                "error": error,
                "time_to_result_ms": round(time_to_result_ms, 3),
            },
        )

    def _compare(self, ticket: _Ticket) -> None:
        """Count the ticket for the revision metric once both labels are known."""
        if ticket.stage_one_label is not None and ticket.stage_two_label is not None:
            self._metrics.compared(ticket.stage_one_label, ticket.stage_two_label)

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
            prediction: Prediction = (await ticket.ref)[ticket.index]
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

    async def _report_unfinished_forever(self) -> None:
        while True:
            self._metrics.unfinished(self._unfinished)
            await asyncio.sleep(1.0)

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


def _ending(outcome: Prediction | Exception) -> tuple[TicketStatus, str | None]:
    """How a ticket ends, given its record's outcome from the heavy model."""
    if isinstance(outcome, DeadlinePassed):
        return "expired", str(outcome)
    if isinstance(outcome, Exception):
        return "failed", _reason(outcome)
    return "completed", None


def _latest(deadlines: list[float | None]) -> float | None:
    """The deadline a shared call must be taken by: the latest, or none if any has none."""
    return None if None in deadlines else max(deadlines)


def _reason(error: Exception) -> str:
    """One line saying why stage two failed, without a remote traceback."""
    cause = error.cause if isinstance(error, RayTaskError) else error
    return f"{type(cause).__name__}: {cause}"[:500]


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)
