"""Every rule of a ticket's life in the ticket store, in plain Python (no Ray).

``TicketLifecycle`` is given a journal, a clock and stage two (``StageTwo``: something
that starts a call for some records), and owns the rules: taking submissions with exact
admission, sharing stage-two calls, attempts and retries, deadlines, the timeout, TTL and
release, cancels (its own tickets' and a peer's), its lease, adopting the tickets of a
replica that is gone, answering waits, and "an answer once read never changes".
``deployments/ticket_store.py`` binds it to Serve.

``submit_many`` only records the tickets and queues them. A dispatcher task makes the
stage-two calls, each carrying the tickets waiting at the time (up to
``records_per_call``: a call's fixed cost, not the model, bounds a small machine), and
waiting for stage two to accept a call happens in a task per call.

Reads of a ticket it holds no record of are answered from its id alone (when it was
issued, and that this service signed it): on its way here, lost, or released (``id_history``).

Every change of a ticket is written to the journal in batches, and a submission is
acknowledged once its tickets are written: a replica that starts, or whose peer's lease
lapsed, takes the unfinished tickets of owners that are gone and runs them again. Reads
are answered from memory (the result from stage two's call: the fast path) for the
tickets this replica holds, from the journal for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from multistage.client.errors import MultistageError, one_line
from multistage.client.models import ErrorBody, Prediction, TicketStatus, TicketView
from multistage.config import TicketPolicy
from multistage.journal import (
    JournalArgs,
    JournalEntry,
    TicketJournal,
    decode_record,
    encode_record,
)
from multistage.models.records import Record
from multistage.store.id_history import IdHistory
from multistage.store.stage_two import Outcome, StageTwo, StageTwoCall, StageTwoReplicaLost, ending
from multistage.tickets import errors as ticket_errors
from multistage.tickets.deadline import DeadlinePassed
from multistage.tickets.ids import DEFAULT_TENANT, TicketIds
from multistage.tickets.views import (
    released_view,
    ticket_view,
    unfinished_view,
)
from multistage.tickets.wire import StoreLoad, Submission, WaitReply

# How often a wait re-reads the journal for tickets a peer holds.
PEER_POLL_S = 0.1
# How long a cancel of a peer's ticket waits to see it canceled before answering 202.
PEER_CANCEL_WAIT_S = 5 * PEER_POLL_S

logger = logging.getLogger("ray.serve")


class JournalUnavailable(MultistageError):
    """The journal did not take a write: the submissions' sender tries again."""


class LifecycleMetrics(Protocol):
    def rejected(self, reason: str, tenant: str) -> None: ...

    def finished(self, status: TicketStatus, time_to_result_ms: float | None) -> None: ...

    def compared(self, stage_one_label: str, stage_two_label: str) -> None: ...


class NoMetrics:
    def rejected(self, reason: str, tenant: str) -> None:
        pass

    def finished(self, status: TicketStatus, time_to_result_ms: float | None) -> None:
        pass

    def compared(self, stage_one_label: str, stage_two_label: str) -> None:
        pass


@dataclass
class _Ticket:
    id: str
    record: Record | None  # kept until the ticket ends, for retries
    deadline: float | None
    submitted_at: float  # when its ingress replica issued it
    stage_one_label: str | None
    request_id: str = ""  # the HTTP request that issued it
    tenant: str = DEFAULT_TENANT
    status: TicketStatus = "pending"
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    # The stage-two call whose outcomes hold this ticket's result, once it completed, and
    # which one is this ticket's.
    result_of: StageTwoCall | None = None
    index: int = 0
    error: ErrorBody | None = None
    call: _Call | None = None  # set once dispatched


@dataclass
class _Call:
    """One stage-two call and the tickets it carries."""

    tickets: list[_Ticket]
    task: asyncio.Task | None = None  # held: the event loop keeps only weak references


class TicketLifecycle:
    def __init__(
        self,
        *,
        owner: str,
        policy: TicketPolicy,
        ids: TicketIds,
        journal: TicketJournal,
        journal_args: JournalArgs,
        stage_two: StageTwo,
        metrics: LifecycleMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._owner = owner
        self._policy = policy
        self._ids = ids
        self._journal = journal
        self._journal_args = journal_args
        self._durable = journal_args.durable
        self._stage_two = stage_two
        self._metrics = metrics or NoMetrics()
        self._now = clock
        # Changes not yet written, by ticket; and what waits for the next write.
        self._unwritten: dict[str, JournalEntry] = {}
        # Tickets that ended here but whose end is not yet written: they read unfinished
        # until it is, so an answer once read never changes (were this replica to die
        # now, another would run them again).
        self._ends_unwritten: set[str] = set()
        # Taken since the last write: run once the journal holds them, forgotten if it
        # did not take them (their senders send them again, maybe to another replica).
        self._taken_unwritten: list[_Ticket] = []
        self._written: asyncio.Future[bool] | None = None
        self._history = IdHistory(ids, policy, self._durable, started_at=clock())
        self._tickets: dict[str, _Ticket] = {}
        self._unfinished = 0
        self._unfinished_by_tenant: Counter[str] = Counter()
        # Finished tickets in finish order; with one TTL that is also release order.
        self._finished: deque[tuple[float, str]] = deque()
        # Shared waits, by the ticket ids they wait on (known here or not yet).
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self._undispatched: asyncio.Queue[_Ticket] = asyncio.Queue()
        self._background: list[asyncio.Task] = []
        # The background loops run while this holds. A cancel alone may not stop them: a
        # journal client can turn it into an error of its own, which the loops survive.
        self._running = False

    async def start(self) -> None:
        """Take the lease and a gone replica's tickets, then run the background work:
        dispatch, release, and with a durable journal writes, lease and peers' cancels."""
        self._written = asyncio.get_running_loop().create_future()
        self._running = True
        forever = [self._dispatch(), self._release_expired_forever()]
        if self._durable:
            await self._journal.renew_lease(self._owner, self._journal_args.lease_s)
            await self._adopt_orphans()
            forever += [
                self._write_forever(),
                self._keep_lease_forever(),
                self._take_cancel_requests_forever(),
            ]
        self._background = [asyncio.create_task(work) for work in forever]

    async def stop(self) -> None:
        """Stop the background work and every call in flight (nothing more is written)."""
        self._running = False
        calls = {t.call.task for t in self._tickets.values() if t.call and t.call.task}
        for task in [*self._background, *calls]:
            task.cancel()
        await asyncio.gather(*self._background, *calls, return_exceptions=True)

    @property
    def held(self) -> int:
        return len(self._tickets)

    @property
    def unfinished(self) -> int:
        return self._unfinished

    async def submit_many(self, submissions: list[Submission]) -> StoreLoad:
        """Take stage-two work; answers the load, by which ingress replicas admit more.

        A submission sent again (its first call's answer was lost) is taken once.
        """
        now = self._now()
        for submission in submissions:
            ticket_id = submission.ticket
            if ticket_id not in self._tickets and not self._history.was_released(ticket_id):
                self._take(submission, now)
        if self._durable and not await self._next_write():
            # Taken, and run, but not yet written: the ingress sends them again.
            raise JournalUnavailable("the ticket journal did not take the submissions")
        return self.load()

    def load(self) -> StoreLoad:
        return StoreLoad(unfinished=self._unfinished, max_unfinished=self._policy.max_unfinished)

    async def view(self, ticket_id: str) -> TicketView | None:
        """The ticket's state now; None if this service never issued the id."""
        ticket = self._tickets.get(ticket_id)
        if ticket is not None:
            return await self._view(ticket)
        entry = (await self._journal.read([ticket_id])).get(ticket_id)
        return (
            self._journaled_view(entry)
            if entry is not None
            else self._history.view(ticket_id, self._now())
        )

    async def wait_ended(self, ticket_ids: list[str], wait_s: float) -> WaitReply:
        """Views of those of the tickets that have ended, waiting up to ``wait_s`` for one
        to end if none has; one such call serves every waiting client of an ingress replica.
        """
        give_up_at = time.monotonic() + wait_s
        views = await self._ended_views(ticket_ids)
        while not views and (left := give_up_at - time.monotonic()) > 0:
            if self._durable and any(t not in self._tickets for t in ticket_ids):
                left = min(left, PEER_POLL_S)  # a peer's tickets end in the journal
            await self._woken_or_timeout(ticket_ids, left)
            views = await self._ended_views(ticket_ids)
        return WaitReply(ended=views, load=self.load())

    async def cancel_unstarted(self, ticket_ids: list[str]) -> None:
        """Cancel those of the tickets that stage two has not started (a stream session
        closed: nobody will read them); work already running finishes."""
        for ticket_id in ticket_ids:
            ticket = self._tickets.get(ticket_id)
            if ticket is None or ticket.status == "pending":
                self._cancel(ticket_id, "its stream session closed before stage two started")

    async def cancel(self, ticket_id: str) -> TicketView | None:
        """Cancel an unfinished ticket: unstarted work never runs, running work is cancelled
        best-effort. Returns the ticket's state afterwards; None if never issued."""
        if ticket_id not in self._tickets:
            entry = (await self._journal.read([ticket_id])).get(ticket_id)
            if entry is not None:
                return await self._cancel_elsewhere(entry)
        ticket = self._cancel(ticket_id, "canceled before stage two started")
        if ticket is None:
            return self._history.view(ticket_id, self._now())
        if ticket.id in self._ends_unwritten:
            await self._next_write()
        return await self._view(ticket)

    async def _cancel_elsewhere(self, entry: JournalEntry) -> TicketView:
        """Cancel a ticket another replica holds: ask it through the journal, and wait a
        moment for it to answer (it takes requests every peer poll, then writes the
        cancel); unfinished, the view says the cancel is on its way."""
        if entry.finished:
            return self._journaled_view(entry)
        await self._journal.request_cancel(entry.ticket, entry.owner)
        give_up_at = time.monotonic() + PEER_CANCEL_WAIT_S
        while not entry.finished and time.monotonic() < give_up_at:
            await asyncio.sleep(PEER_POLL_S)
            entry = (await self._journal.read([entry.ticket])).get(entry.ticket, entry)
        return self._journaled_view(entry)

    def _cancel(self, ticket_id: str, unstarted_reason: str) -> _Ticket | None:
        """The ticket, canceled unless it had ended; None if this replica holds no record
        of it and it is not on its way here."""
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            unrecorded = self._history.view(ticket_id, self._now())
            if unrecorded is None or unrecorded.status != "pending":
                return None
            # On its way here: its submission will find it canceled, and be dropped.
            ticket = self._record(ticket_id, None, None, self._ids.issued_at(ticket_id), None)
            self._count_unfinished(ticket, 1)
            self._finish(ticket, "canceled", ticket_errors.canceled(unstarted_reason))
        elif ticket.finished_at is None:
            started = ticket.status == "running"
            why = "canceled by the client" if started else unstarted_reason
            self._finish(ticket, "canceled", ticket_errors.canceled(why))
            self._stop_call_if_unwanted(ticket.call)
        return ticket

    def _stop_call_if_unwanted(self, call: _Call | None) -> None:
        if call is not None and all(t.finished_at is not None for t in call.tickets):
            call.task.cancel()  # no one is left waiting for this call

    def _take(self, submission: Submission, now: float) -> None:
        issued_at = self._ids.issued_at(submission.ticket)
        if issued_at is None or not self._history.accepts(issued_at, now):
            # Too late: reads of it may already have answered 'lost', and must stay true.
            logger.warning(
                "a submission reached the ticket store too late; its ticket reads 'lost'",
                extra={"ticket": submission.ticket},
            )
            return
        ticket = self._record(
            submission.ticket,
            submission.record,
            submission.deadline,
            issued_at,
            submission.stage_one_label,
            submission.request_id,
            submission.tenant,
        )
        self._count_unfinished(ticket, 1)
        self._note(ticket, with_record=True)
        # Admitted by an ingress replica's estimate, refused here, where counts are exact.
        if self._unfinished > self._policy.max_unfinished:
            self._refuse(ticket, ticket_errors.stage_two_full(self._policy.max_unfinished))
        elif self._past_tenant_limit(ticket, submission.tenant_limit):
            self._refuse(ticket, ticket_errors.tenant_full(ticket.tenant, submission.tenant_limit))
        if self._durable:
            self._taken_unwritten.append(ticket)
        elif ticket.finished_at is None:
            self._undispatched.put_nowait(ticket)

    def _count_unfinished(self, ticket: _Ticket, change: int) -> None:
        self._unfinished += change
        self._unfinished_by_tenant[ticket.tenant] += change

    def _past_tenant_limit(self, ticket: _Ticket, limit: int | None) -> bool:
        return limit is not None and self._unfinished_by_tenant[ticket.tenant] > limit

    def _refuse(self, ticket: _Ticket, why: ErrorBody) -> None:
        self._metrics.rejected(why.error, ticket.tenant)
        self._finish(ticket, "rejected", why)

    def _record(
        self,
        ticket_id: str,
        record: Record | None,
        deadline: float | None,
        issued_at: float,
        stage_one_label: str | None,
        request_id: str = "",
        tenant: str = DEFAULT_TENANT,
    ) -> _Ticket:
        self._make_room()
        ticket = _Ticket(
            ticket_id, record, deadline, issued_at, stage_one_label, request_id, tenant
        )
        self._tickets[ticket_id] = ticket
        return ticket

    async def _ended_views(self, ticket_ids: list[str]) -> list[TicketView]:
        """Views of those of the tickets that have ended: here, in the journal, or before
        they could arrive."""
        held = [self._tickets[t] for t in ticket_ids if t in self._tickets]
        views = list(await asyncio.gather(*(self._view(t) for t in held if self._has_ended(t))))
        others = [t for t in ticket_ids if t not in self._tickets]
        entries = await self._journal.read(others) if others else {}
        for ticket_id in others:
            if (entry := entries.get(ticket_id)) is not None:
                if entry.finished:
                    views.append(self._journaled_view(entry))
            elif (view := self._history.view(ticket_id, self._now())) and view.status != "pending":
                views.append(view)
        return views

    async def _woken_or_timeout(self, ticket_ids: list[str], timeout_s: float) -> None:
        """Until one of the tickets held here ends, or ``timeout_s`` passes."""
        woken = asyncio.get_running_loop().create_future()
        for ticket_id in ticket_ids:
            self._waiters.setdefault(ticket_id, []).append(woken)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken, timeout=timeout_s)
        finally:
            self._stop_waiting(ticket_ids, woken)

    def _stop_waiting(self, ticket_ids: list[str], woken: asyncio.Future) -> None:
        for ticket_id in ticket_ids:
            waiting = self._waiters.get(ticket_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(woken)
                if not waiting:
                    del self._waiters[ticket_id]

    async def _dispatch(self) -> None:
        """Tickets waiting when a call leaves share it, up to ``records_per_call``."""
        while self._running:
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
            await asyncio.wait_for(self._attempt_until_settled(call), self._seconds_to(timeout_at))
            return
        except asyncio.TimeoutError:
            status, error = "failed", ticket_errors.timed_out(self._policy.timeout_s)
        except asyncio.CancelledError:
            status, error = "canceled", ticket_errors.canceled("canceled by the client")
        except Exception:  # noqa: BLE001 - any failure ends the ticket; its cause goes to the log
            logger.exception(
                "stage two failed for a call", extra={"tickets": [t.id for t in call.tickets]}
            )
            status, error = "failed", ticket_errors.stage_two_error()
        self._finish_unfinished(call.tickets, status, error)

    async def _attempt_until_settled(self, call: _Call) -> None:
        """Call stage two, again when its replica dies under the call (not when the model
        fails: that answer would be the same). Attempts count per ticket: a ticket taken
        from a store replica that is gone brings the attempts made there."""
        while True:
            tickets = [t for t in call.tickets if t.finished_at is None]
            attempts = self._policy.max_attempts
            spent = [t for t in tickets if t.attempts >= attempts]
            self._finish_unfinished(spent, "failed", ticket_errors.replica_lost(attempts))
            tickets = [t for t in tickets if t.attempts < attempts]
            if not tickets:
                return
            for ticket in tickets:
                ticket.attempts += 1  # written with its start: a run not started is not one
            stage_two = self._stage_two(
                [t.record for t in tickets], [t.deadline for t in tickets], [t.id for t in tickets]
            )
            try:
                await self._accepted(stage_two, _latest([t.deadline for t in tickets]))
                self._started(tickets)
                outcomes = await stage_two.outcomes()
            except asyncio.CancelledError:
                stage_two.cancel()
                raise
            except DeadlinePassed:
                self._finish_unfinished(tickets, "expired", ticket_errors.deadline_passed())
                return
            except StageTwoReplicaLost as error:
                logger.warning(
                    "stage two's replica died under a call; trying again",
                    extra={"tickets": [t.id for t in tickets], "error": str(error)},
                )
                for ticket in tickets:
                    ticket.status = "pending"
                continue
            self._settle(tickets, stage_two, outcomes)
            return

    async def _accepted(self, call: StageTwoCall, deadline: float | None) -> None:
        """Until a replica takes the call; cancelled at the deadline."""
        if deadline is None:
            return await call.accepted()
        try:
            await asyncio.wait_for(call.accepted(), self._seconds_to(deadline))
        except asyncio.TimeoutError:
            call.cancel()
            raise DeadlinePassed() from None

    def _started(self, tickets: list[_Ticket]) -> None:
        now = self._now()
        for ticket in tickets:
            if ticket.finished_at is None:  # else canceled while the call waited
                ticket.status, ticket.started_at = "running", ticket.started_at or now
                self._note(ticket)

    def _settle(
        self, tickets: list[_Ticket], call: StageTwoCall, outcomes: Sequence[Outcome]
    ) -> None:
        for index, (ticket, outcome) in enumerate(zip(tickets, outcomes, strict=True)):
            if ticket.finished_at is None:  # else canceled while the call ran
                ticket.result_of, ticket.index = call, index
                if isinstance(outcome, Prediction):
                    self._compare(ticket, outcome.label)
                self._finish(ticket, *ending(outcome))

    def _seconds_to(self, moment: float) -> float:
        return max(0.0, moment - self._now())

    def _finish_unfinished(
        self, tickets: list[_Ticket], status: TicketStatus, error: ErrorBody | None
    ) -> None:
        for ticket in tickets:
            if ticket.finished_at is None:
                self._finish(ticket, status, error)

    def _finish(
        self,
        ticket: _Ticket,
        status: TicketStatus,
        error: ErrorBody | None,
        result: Prediction | None = None,
    ) -> None:
        ticket.status, ticket.error = status, error
        ticket.finished_at = self._now()
        ticket.record = None
        if status != "completed":
            ticket.result_of = None
        self._note(ticket, result)
        self._count_unfinished(ticket, -1)
        self._finished.append((ticket.finished_at + self._policy.result_ttl_s, ticket.id))
        if not self._durable:
            self._wake(ticket.id)
        time_to_result_ms = (ticket.finished_at - ticket.submitted_at) * 1000
        self._metrics.finished(status, time_to_result_ms if status == "completed" else None)
        logger.info(
            "ticket finished",
            extra={
                "ticket": ticket.id,
                "http_request_id": ticket.request_id,
                "status": status,
                "error": error and error.error,
                "time_to_result_ms": round(time_to_result_ms, 3),
            },
        )

    def _wake(self, ticket_id: str) -> None:
        for woken in self._waiters.pop(ticket_id, ()):
            if not woken.done():
                woken.set_result(None)

    def _has_ended(self, ticket: _Ticket) -> bool:
        """Whether the ticket reads ended: it did, and the journal (if any) says so."""
        return ticket.finished_at is not None and ticket.id not in self._ends_unwritten

    def _note(
        self, ticket: _Ticket, result: Prediction | None = None, with_record: bool = False
    ) -> None:
        """Write the ticket's change to the journal with the next batch; its record goes
        with its first entry only (the journal keeps it until the ticket ends)."""
        if not self._durable:
            return
        entry = self._entry(ticket, result)
        if with_record and ticket.record is not None:
            entry.record = encode_record(ticket.record)
        elif (earlier := self._unwritten.get(ticket.id)) is not None and not entry.finished:
            entry.record = earlier.record  # the first entry, not written yet: keep its record
        if entry.finished:
            self._ends_unwritten.add(ticket.id)
        self._unwritten[ticket.id] = entry

    def _entry(self, ticket: _Ticket, result: Prediction | None) -> JournalEntry:
        return JournalEntry(
            ticket=ticket.id,
            owner=self._owner,
            status=ticket.status,
            submitted_at=ticket.submitted_at,
            started_at=ticket.started_at,
            finished_at=ticket.finished_at,
            attempts=ticket.attempts,
            error=ticket.error,
            deadline=ticket.deadline,
            stage_one_label=ticket.stage_one_label,
            request_id=ticket.request_id,
            tenant=ticket.tenant,
            result=result,
        )

    async def _next_write(self) -> bool:
        """Whether the next batch written to the journal (holding every change so far)
        was taken."""
        return await asyncio.shield(self._written)

    async def _write_forever(self) -> None:
        while self._running:
            await asyncio.sleep(self._journal_args.flush_every_s)
            await self._write_batch()

    async def _write_batch(self) -> None:
        batch, self._unwritten = self._unwritten, {}
        taken, self._taken_unwritten = self._taken_unwritten, []
        written = self._written
        self._written = asyncio.get_running_loop().create_future()
        if not batch:
            # Every change so far is written: a submission that changed nothing (sent
            # again, or too late) is answered now, not at the next change, however late.
            written.set_result(True)
            return
        try:
            refused = await self._journal.write(list(batch.values()), self._history.longest_life_s)
        except Exception as error:  # noqa: BLE001 - any failure: keep the batch, try again
            logger.warning("the ticket journal did not take a write: %s", one_line(error))
            for ticket in taken:
                self._let_go(ticket)
                batch.pop(ticket.id, None)
            self._unwritten = batch | self._unwritten  # later changes win
            written.set_result(False)
        else:
            self._written_down(batch, refused)
            for ticket in taken:
                if ticket.finished_at is None:
                    self._undispatched.put_nowait(ticket)
            written.set_result(True)

    def _written_down(self, batch: dict[str, JournalEntry], refused: set[str]) -> None:
        """Show the ends the journal now holds; give up the tickets it said are not ours."""
        for ticket_id in refused:
            logger.warning(
                "the ticket journal holds a ticket as another replica's; gave it up",
                extra={"ticket": ticket_id},
            )
            self._ends_unwritten.discard(ticket_id)  # released meanwhile, it may be held no more
            if (ticket := self._tickets.get(ticket_id)) is not None:
                self._let_go(ticket)
        for entry in batch.values():
            if entry.finished and entry.ticket not in refused:
                self._ends_unwritten.discard(entry.ticket)
                self._wake(entry.ticket)

    def _let_go(self, ticket: _Ticket) -> None:
        """Drop a ticket this replica will not run: taken but never written (its sender
        sends it again, maybe to another replica), or refused by the journal (another
        replica took it over, this one thought gone, or ended it first). Its reads are
        answered from the journal or its id from now on; its run here, if any, stops."""
        if self._tickets.get(ticket.id) is ticket:
            del self._tickets[ticket.id]
            self._unwritten.pop(ticket.id, None)
            self._ends_unwritten.discard(ticket.id)
        if ticket.finished_at is None:
            ticket.finished_at = self._now()  # every path skips it from now on
            self._count_unfinished(ticket, -1)
            self._stop_call_if_unwanted(ticket.call)
        self._wake(ticket.id)

    async def _keep_lease_forever(self) -> None:
        """Renew this replica's lease and take the tickets of owners whose lease lapsed."""
        lease_s = self._journal_args.lease_s
        while self._running:
            await asyncio.sleep(lease_s / 4)
            try:
                await self._journal.renew_lease(self._owner, lease_s)
                await self._adopt_orphans()
            except Exception as error:  # noqa: BLE001 - a journal that is down: try again
                logger.warning("the ticket journal did not renew a lease: %s", one_line(error))

    async def _take_cancel_requests_forever(self) -> None:
        """Cancel those of this replica's tickets that other replicas were asked to cancel,
        as often as a wait reads a peer's ticket: a cancel must beat the ticket's start."""
        while self._running:
            await asyncio.sleep(PEER_POLL_S)
            try:
                for ticket_id in await self._journal.take_cancel_requests(self._owner):
                    self._cancel(ticket_id, "canceled before stage two started")
            except Exception as error:  # noqa: BLE001 - a journal that is down: try again
                logger.warning("the ticket journal did not answer: %s", one_line(error))

    async def _adopt_orphans(self) -> None:
        """Run again the unfinished tickets of store replicas that are gone."""
        entries = await self._journal.take_orphans(self._owner)
        adopted = [e for e in entries if e.ticket not in self._tickets and e.record is not None]
        for entry in adopted:
            ticket = self._record(
                entry.ticket,
                decode_record(entry.record),
                entry.deadline,
                entry.submitted_at,
                entry.stage_one_label,
                entry.request_id,
                entry.tenant,
            )
            ticket.attempts = entry.attempts
            self._count_unfinished(ticket, 1)
            self._note(ticket)
            self._undispatched.put_nowait(ticket)
        if adopted:
            logger.warning(
                "took the unfinished tickets of a ticket store replica that is gone",
                extra={"tickets": [e.ticket for e in adopted]},
            )

    def _compare(self, ticket: _Ticket, stage_two_label: str) -> None:
        """Count the ticket for the revision metric: did stage two change stage one's label?"""
        if ticket.stage_one_label is not None:
            self._metrics.compared(ticket.stage_one_label, stage_two_label)

    async def _view(self, ticket: _Ticket) -> TicketView:
        if ticket.id in self._ends_unwritten:
            return unfinished_view(ticket.id, ticket)
        if self._past_ttl(ticket.finished_at):  # exact, though the reaper comes by later
            return released_view(ticket.id, ticket.submitted_at)
        result = None
        if ticket.status == "completed":
            result = (await ticket.result_of.outcomes())[ticket.index]
        return ticket_view(ticket.id, ticket, result)

    def _past_ttl(self, finished_at: float | None) -> bool:
        return finished_at is not None and finished_at + self._policy.result_ttl_s <= self._now()

    def _journaled_view(self, entry: JournalEntry) -> TicketView:
        """A ticket's view from its journal entry. One finished longer ago than the TTL
        reads released: the entry outlives it (``IdHistory.longest_life_s``) only so that an id the
        journal does not hold can be told to have never arrived."""
        if self._past_ttl(entry.finished_at):
            return released_view(entry.ticket, entry.submitted_at)
        return ticket_view(entry.ticket, entry, entry.result)

    def _make_room(self) -> None:
        """Release the oldest finished tickets while the store is full."""
        while len(self._tickets) >= self._policy.max_held and self._finished:
            self._release_oldest()

    async def _release_expired_forever(self) -> None:
        interval = min(1.0, self._policy.result_ttl_s / 2)
        while self._running:
            self.release_expired()
            await asyncio.sleep(interval)

    def release_expired(self) -> None:
        """Release the tickets past their TTL (the background work does, every second)."""
        now = self._now()
        while self._finished and self._finished[0][0] <= now:
            self._release_oldest()
        self._history.forget_old(now)

    def _release_oldest(self) -> None:
        # Dropping a ticket drops its call's result, which frees it in stage two's store.
        _, ticket_id = self._finished.popleft()
        ticket = self._tickets.pop(ticket_id, None)
        if ticket is not None:
            self._history.released(ticket_id, ticket.submitted_at, self._now())


def _latest(deadlines: list[float | None]) -> float | None:
    """The deadline a shared call must be taken by: the latest, or none if any has none."""
    return None if None in deadlines else max(deadlines)
