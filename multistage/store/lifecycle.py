"""Every rule of a ticket's life in the ticket store, in plain Python (no Ray).

``TicketLifecycle`` is given a journal, a clock and stage two (``StageTwo``: something
that starts a call for some records), and owns the rules: taking submissions with exact
admission, sharing stage-two calls, attempts and retries, deadlines, the timeout, TTL and
release, cancels (its own tickets' and a peer's), its lease, adopting the tickets of a
replica that is gone, answering waits, and "an answer once read never changes".
``deployments/ticket_store.py`` binds it to Serve.

``submit_many`` only records the tickets and queues them for stage two (``dispatch``).

Reads of a ticket it holds no record of are answered from its id alone (when it was
issued, and that this service signed it): on its way here, lost, or released (``id_history``).

Every change of a ticket is written to the journal in batches (``write_behind``), and a
submission is acknowledged once its tickets are written: a replica that starts, or whose
peer's lease lapsed, takes the unfinished tickets of owners that are gone (``peers``)
and runs them again. Reads are answered by ``reads``; finished tickets let go by ``release``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from multistage.config import TicketPolicy
from multistage.journal import JournalArgs, JournalEntry, TicketJournal, decode_record
from multistage.models.records import Record
from multistage.store.dispatch import Dispatcher
from multistage.store.held import HeldTicket, SharedCall
from multistage.store.id_history import IdHistory
from multistage.store.metrics import LifecycleMetrics, NoMetrics
from multistage.store.peers import PEER_POLL_S, Peers
from multistage.store.reads import TicketReads
from multistage.store.release import Releases
from multistage.store.stage_two import Outcome, StageTwo, StageTwoCall, ending
from multistage.store.waiters import Waiters
from multistage.store.write_behind import JournalWriteBehind
from multistage.tickets import errors as ticket_errors
from multistage.tickets.ids import DEFAULT_TENANT, TicketIds
from multistage.tickets.wire import StoreLoad, Submission, WaitReply
from multistage_client.errors import MultistageError
from multistage_client.models import ErrorBody, Prediction, TicketStatus, TicketView

logger = logging.getLogger("ray.serve")


class JournalUnavailable(MultistageError):
    """The journal did not take a write: the submissions' sender tries again."""


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
        self._metrics = metrics or NoMetrics()
        self._now = clock
        self._history = IdHistory(ids, policy, self._durable, started_at=clock())
        self._waiters = Waiters()
        self._calls = Dispatcher(
            policy=policy,
            stage_two=stage_two,
            clock=clock,
            started=self._started,
            settle=self._settle,
            finish=self._finish,
        )
        self._writes = JournalWriteBehind(
            owner=owner,
            journal=journal,
            args=journal_args,
            keep_s=self._history.longest_life_s,
            let_go=self._let_go,
            give_up=self._give_up,
            ended=self._waiters.wake,
            run=self._calls.queue,
        )
        self._tickets: dict[str, HeldTicket] = {}
        self._releases = Releases(
            policy=policy, history=self._history, clock=clock, held=self._tickets
        )
        self._reads = TicketReads(
            held=self._tickets,
            journal=journal,
            writes=self._writes,
            releases=self._releases,
            history=self._history,
            clock=clock,
        )
        self._peers = Peers(
            owner=owner,
            journal=journal,
            lease_s=journal_args.lease_s,
            adopt=self._adopt,
            cancel=lambda ticket_id: self._cancel(ticket_id, "canceled before stage two started"),
        )
        self._unfinished = 0
        self._unfinished_by_tenant: Counter[str] = Counter()
        self._background: list[asyncio.Task] = []
        # The background loops run while this holds. A cancel alone may not stop them: a
        # journal client can turn it into an error of its own, which the loops survive.
        self._running = False

    async def start(self) -> None:
        """Take the lease and a gone replica's tickets, then run the background work:
        dispatch, release, and with a durable journal writes, lease and peers' cancels."""
        self._writes.start()
        self._running = True
        running = self._is_running
        forever = [
            self._calls.dispatch_forever(running),
            self._releases.release_expired_forever(running),
        ]
        if self._durable:
            await self._peers.join()
            forever += [
                self._writes.write_forever(running),
                self._peers.keep_lease_forever(running),
                self._peers.take_cancel_requests_forever(running),
            ]
        self._background = [asyncio.create_task(work) for work in forever]

    async def stop(self) -> None:
        """Stop the background work and every call in flight (nothing more is written)."""
        self._running = False
        calls = {t.call.task for t in self._tickets.values() if t.call and t.call.task}
        for task in [*self._background, *calls]:
            task.cancel()
        await asyncio.gather(*self._background, *calls, return_exceptions=True)

    def _is_running(self) -> bool:
        return self._running

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
        if self._durable and not await self._writes.next_write():
            # Taken, and run, but not yet written: the ingress sends them again.
            raise JournalUnavailable("the ticket journal did not take the submissions")
        return self.load()

    def load(self) -> StoreLoad:
        return StoreLoad(unfinished=self._unfinished, max_unfinished=self._policy.max_unfinished)

    async def view(self, ticket_id: str) -> TicketView | None:
        """The ticket's state now; None if this service never issued the id."""
        return await self._reads.view(ticket_id)

    async def wait_ended(self, ticket_ids: list[str], wait_s: float) -> WaitReply:
        """Views of those of the tickets that have ended, waiting up to ``wait_s`` for one
        to end if none has; one such call serves every waiting client of an ingress replica.
        """
        give_up_at = time.monotonic() + wait_s
        views = await self._reads.ended_views(ticket_ids)
        while not views and (left := give_up_at - time.monotonic()) > 0:
            if self._durable and any(t not in self._tickets for t in ticket_ids):
                left = min(left, PEER_POLL_S)  # a peer's tickets end in the journal
            await self._waiters.woken_or_timeout(ticket_ids, left)
            views = await self._reads.ended_views(ticket_ids)
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
        if self._writes.end_unwritten(ticket.id):
            await self._writes.next_write()
        return await self._reads.held_view(ticket)

    async def _cancel_elsewhere(self, entry: JournalEntry) -> TicketView:
        """Cancel a ticket another replica holds; unfinished, the view says the cancel is
        on its way."""
        if not entry.finished:
            entry = await self._peers.cancel(entry)
        return self._reads.journaled_view(entry)

    def _cancel(self, ticket_id: str, unstarted_reason: str) -> HeldTicket | None:
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

    def _stop_call_if_unwanted(self, call: SharedCall | None) -> None:
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
        self._writes.note(ticket, with_record=True)
        # Admitted by an ingress replica's estimate, refused here, where counts are exact.
        if self._unfinished > self._policy.max_unfinished:
            self._refuse(ticket, ticket_errors.stage_two_full(self._policy.max_unfinished))
        elif self._past_tenant_limit(ticket, submission.tenant_limit):
            self._refuse(ticket, ticket_errors.tenant_full(ticket.tenant, submission.tenant_limit))
        if self._durable:
            self._writes.taken(ticket)
        elif ticket.finished_at is None:
            self._calls.queue(ticket)

    def _count_unfinished(self, ticket: HeldTicket, change: int) -> None:
        self._unfinished += change
        self._unfinished_by_tenant[ticket.tenant] += change

    def _past_tenant_limit(self, ticket: HeldTicket, limit: int | None) -> bool:
        return limit is not None and self._unfinished_by_tenant[ticket.tenant] > limit

    def _refuse(self, ticket: HeldTicket, why: ErrorBody) -> None:
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
    ) -> HeldTicket:
        self._releases.make_room()
        ticket = HeldTicket(
            ticket_id, record, deadline, issued_at, stage_one_label, request_id, tenant
        )
        self._tickets[ticket_id] = ticket
        return ticket

    def _started(self, tickets: list[HeldTicket]) -> None:
        now = self._now()
        for ticket in tickets:
            if ticket.finished_at is None:  # else canceled while the call waited
                ticket.status, ticket.started_at = "running", ticket.started_at or now
                self._writes.note(ticket)

    def _settle(
        self, tickets: list[HeldTicket], call: StageTwoCall, outcomes: Sequence[Outcome]
    ) -> None:
        for index, (ticket, outcome) in enumerate(zip(tickets, outcomes, strict=True)):
            if ticket.finished_at is None:  # else canceled while the call ran
                ticket.result_of, ticket.index = call, index
                if isinstance(outcome, Prediction):
                    self._compare(ticket, outcome.label)
                self._finish(ticket, *ending(outcome))

    def _finish(
        self,
        ticket: HeldTicket,
        status: TicketStatus,
        error: ErrorBody | None,
        result: Prediction | None = None,
    ) -> None:
        ticket.status, ticket.error = status, error
        ticket.finished_at = self._now()
        ticket.record = None
        if status != "completed":
            ticket.result_of = None
        self._writes.note(ticket, result)
        self._count_unfinished(ticket, -1)
        self._releases.finished(ticket)
        if not self._durable:
            self._waiters.wake(ticket.id)
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

    def _give_up(self, ticket_id: str) -> None:
        """Let go of a ticket the journal holds as another replica's, if still held."""
        if (ticket := self._tickets.get(ticket_id)) is not None:
            self._let_go(ticket)

    def _let_go(self, ticket: HeldTicket) -> None:
        """Drop a ticket this replica will not run: taken but never written (its sender
        sends it again, maybe to another replica), or refused by the journal (another
        replica took it over, this one thought gone, or ended it first). Its reads are
        answered from the journal or its id from now on; its run here, if any, stops."""
        if self._tickets.get(ticket.id) is ticket:
            del self._tickets[ticket.id]
            self._writes.forget(ticket.id)
        if ticket.finished_at is None:
            ticket.finished_at = self._now()  # every path skips it from now on
            self._count_unfinished(ticket, -1)
            self._stop_call_if_unwanted(ticket.call)
        self._waiters.wake(ticket.id)

    def _adopt(self, entries: list[JournalEntry]) -> None:
        """Run again the unfinished tickets of store replicas that are gone."""
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
            self._writes.note(ticket)
            self._calls.queue(ticket)
        if adopted:
            logger.warning(
                "took the unfinished tickets of a ticket store replica that is gone",
                extra={"tickets": [e.ticket for e in adopted]},
            )

    def _compare(self, ticket: HeldTicket, stage_two_label: str) -> None:
        """Count the ticket for the revision metric: did stage two change stage one's label?"""
        if ticket.stage_one_label is not None:
            self._metrics.compared(ticket.stage_one_label, stage_two_label)

    def release_expired(self) -> None:
        """Release the tickets past their TTL (the background work does, every second)."""
        self._releases.release_expired()
