"""The ticket journal's writes, batched behind the changes they hold.

Writing each change of a ticket as it happens would cost the journal a write per change;
instead every change waits for the next batch, written every ``flush_every_s``, and a
submission is acknowledged once a batch holding its tickets is taken. A ticket that ended
here reads unfinished until its end is written, so that an answer once read never changes
(were this replica to die before the write, another would run the ticket again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from multistage.journal import JournalArgs, JournalEntry, TicketJournal, encode_record
from multistage.store.held import HeldTicket
from multistage_client.errors import one_line
from multistage_client.models import Prediction

logger = logging.getLogger("ray.serve")


class JournalWriteBehind:
    """The changes of one store replica's tickets on their way to the journal.

    What a batch's write means for the tickets is the lifecycle's to say: ``let_go`` a
    ticket taken but never written, ``give_up`` one the journal holds as another
    replica's, wake the waits on a ticket whose end is written (``ended``), and ``run``
    a ticket taken and written.
    """

    def __init__(
        self,
        *,
        owner: str,
        journal: TicketJournal,
        args: JournalArgs,
        keep_s: float,
        let_go: Callable[[HeldTicket], None],
        give_up: Callable[[str], None],
        ended: Callable[[str], None],
        run: Callable[[HeldTicket], None],
    ) -> None:
        self._owner = owner
        self._journal = journal
        self._args = args
        self._keep_s = keep_s  # how long the journal keeps a finished ticket
        self._let_go = let_go
        self._give_up = give_up
        self._ended = ended
        self._run = run
        # Changes not yet written, by ticket; and what waits for the next write.
        self._unwritten: dict[str, JournalEntry] = {}
        # Tickets that ended here but whose end is not yet written: they read unfinished
        # until it is, so an answer once read never changes (were this replica to die
        # now, another would run them again).
        self._ends_unwritten: set[str] = set()
        # Taken since the last write: run once the journal holds them, forgotten if it
        # did not take them (their senders send them again, maybe to another replica).
        self._taken_unwritten: list[HeldTicket] = []
        self._written: asyncio.Future[bool] | None = None

    def start(self) -> None:
        """Begin the first batch (in the event loop that writes them)."""
        self._written = asyncio.get_running_loop().create_future()

    def note(
        self, ticket: HeldTicket, result: Prediction | None = None, with_record: bool = False
    ) -> None:
        """Write the ticket's change to the journal with the next batch; its record goes
        with its first entry only (the journal keeps it until the ticket ends)."""
        if not self._args.durable:
            return
        entry = self._entry(ticket, result)
        if with_record and ticket.record is not None:
            entry.record = encode_record(ticket.record)
        elif (earlier := self._unwritten.get(ticket.id)) is not None and not entry.finished:
            entry.record = earlier.record  # the first entry, not written yet: keep its record
        if entry.finished:
            self._ends_unwritten.add(ticket.id)
        self._unwritten[ticket.id] = entry

    def taken(self, ticket: HeldTicket) -> None:
        """A ticket just taken: run once the next batch is written, let go if it is not."""
        self._taken_unwritten.append(ticket)

    def end_unwritten(self, ticket_id: str) -> bool:
        """Whether the ticket ended here but the journal does not say so yet."""
        return ticket_id in self._ends_unwritten

    def forget(self, ticket_id: str) -> None:
        """Write nothing more of a ticket this replica no longer holds."""
        self._unwritten.pop(ticket_id, None)
        self._ends_unwritten.discard(ticket_id)

    async def next_write(self) -> bool:
        """Whether the next batch written to the journal (holding every change so far)
        was taken."""
        return await asyncio.shield(self._written)

    async def write_forever(self, running: Callable[[], bool]) -> None:
        while running():
            await asyncio.sleep(self._args.flush_every_s)
            await self._write_batch()

    def _entry(self, ticket: HeldTicket, result: Prediction | None) -> JournalEntry:
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
            refused = await self._journal.write(list(batch.values()), self._keep_s)
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
                    self._run(ticket)
            written.set_result(True)

    def _written_down(self, batch: dict[str, JournalEntry], refused: set[str]) -> None:
        """Show the ends the journal now holds; give up the tickets it said are not ours."""
        for ticket_id in refused:
            logger.warning(
                "the ticket journal holds a ticket as another replica's; gave it up",
                extra={"ticket": ticket_id},
            )
            self._ends_unwritten.discard(ticket_id)  # released meanwhile, it may be held no more
            self._give_up(ticket_id)
        for entry in batch.values():
            if entry.finished and entry.ticket not in refused:
                self._ends_unwritten.discard(entry.ticket)
                self._ended(entry.ticket)
