"""The stage-two calls of the ticket store's tickets.

Submissions are only recorded and queued; a dispatcher task makes the stage-two calls,
each carrying the tickets waiting at the time (up to ``records_per_call``: a call's fixed
cost, not the model, bounds a small machine), and waiting for stage two to accept a call
happens in a task per call. Every ticket a call carries finishes: settled by stage two's
outcomes, or failed, expired or canceled; none hangs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from multistage.config import TicketPolicy
from multistage.store.held import HeldTicket, SharedCall
from multistage.store.stage_two import Outcome, StageTwo, StageTwoCall, StageTwoReplicaLost
from multistage.tickets import errors as ticket_errors
from multistage.tickets.deadline import DeadlinePassed
from multistage_client.models import ErrorBody, TicketStatus

logger = logging.getLogger("ray.serve")


class Dispatcher:
    """Queued tickets into shared stage-two calls, and each call to an end.

    What a call means for its tickets is the lifecycle's to say: they ``started`` once a
    replica accepted it, ``settle`` by its outcomes, or ``finish`` without them.
    """

    def __init__(
        self,
        *,
        policy: TicketPolicy,
        stage_two: StageTwo,
        clock: Callable[[], float],
        started: Callable[[list[HeldTicket]], None],
        settle: Callable[[list[HeldTicket], StageTwoCall, Sequence[Outcome]], None],
        finish: Callable[[HeldTicket, TicketStatus, ErrorBody | None], None],
    ) -> None:
        self._policy = policy
        self._stage_two = stage_two
        self._now = clock
        self._started = started
        self._settle = settle
        self._finish = finish
        self._undispatched: asyncio.Queue[HeldTicket] = asyncio.Queue()

    def queue(self, ticket: HeldTicket) -> None:
        """Send the ticket to stage two with the next call."""
        self._undispatched.put_nowait(ticket)

    async def dispatch_forever(self, running: Callable[[], bool]) -> None:
        """Tickets waiting when a call leaves share it, up to ``records_per_call``."""
        while running():
            waiting = [await self._undispatched.get()]
            if self._undispatched.qsize() + 1 < self._policy.records_per_call:
                # Not a full call yet: let others join. A full one leaves at once, so the
                # wait never caps throughput.
                await asyncio.sleep(self._policy.dispatch_wait_s)
            while len(waiting) < self._policy.records_per_call and not self._undispatched.empty():
                waiting.append(self._undispatched.get_nowait())
            call = SharedCall(
                [t for t in waiting if t.finished_at is None]
            )  # not canceled meanwhile
            if call.tickets:
                logger.info("stage two call", extra={"tickets": [t.id for t in call.tickets]})
                # Created here, the task (and the calls it makes) belong to no client's request.
                call.task = asyncio.create_task(self._follow(call))
                for ticket in call.tickets:
                    ticket.call = call

    async def _follow(self, call: SharedCall) -> None:
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

    async def _attempt_until_settled(self, call: SharedCall) -> None:
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

    def _seconds_to(self, moment: float) -> float:
        return max(0.0, moment - self._now())

    def _finish_unfinished(
        self, tickets: list[HeldTicket], status: TicketStatus, error: ErrorBody | None
    ) -> None:
        for ticket in tickets:
            if ticket.finished_at is None:
                self._finish(ticket, status, error)


def _latest(deadlines: list[float | None]) -> float | None:
    """The deadline a shared call must be taken by: the latest, or none if any has none."""
    return None if None in deadlines else max(deadlines)
