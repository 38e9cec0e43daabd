"""Reads of tickets: from memory for those this replica holds (the result from stage
two's call: the fast path), from the journal for a peer's, and from the id alone for
those nobody holds a record of (``id_history``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from multistage.journal import JournalEntry, TicketJournal
from multistage.store.held import HeldTicket
from multistage.store.id_history import IdHistory
from multistage.store.release import Releases
from multistage.store.write_behind import JournalWriteBehind
from multistage.tickets.views import released_view, ticket_view, unfinished_view
from multistage_client.models import TicketView


class TicketReads:
    """Views of tickets, as the lifecycle's ``held`` tickets, its journal and its writes
    stand now."""

    def __init__(
        self,
        *,
        held: dict[str, HeldTicket],
        journal: TicketJournal,
        writes: JournalWriteBehind,
        releases: Releases,
        history: IdHistory,
        clock: Callable[[], float],
    ) -> None:
        self._tickets = held
        self._journal = journal
        self._writes = writes
        self._releases = releases
        self._history = history
        self._now = clock

    async def view(self, ticket_id: str) -> TicketView | None:
        """The ticket's state now; None if this service never issued the id."""
        ticket = self._tickets.get(ticket_id)
        if ticket is not None:
            return await self.held_view(ticket)
        entry = (await self._journal.read([ticket_id])).get(ticket_id)
        return (
            self.journaled_view(entry)
            if entry is not None
            else self._history.view(ticket_id, self._now())
        )

    async def ended_views(self, ticket_ids: list[str]) -> list[TicketView]:
        """Views of those of the tickets that have ended: here, in the journal, or before
        they could arrive."""
        held = [self._tickets[t] for t in ticket_ids if t in self._tickets]
        ended = [t for t in held if self.has_ended(t)]
        views = list(await asyncio.gather(*(self.held_view(t) for t in ended)))
        others = [t for t in ticket_ids if t not in self._tickets]
        entries = await self._journal.read(others) if others else {}
        for ticket_id in others:
            if (entry := entries.get(ticket_id)) is not None:
                if entry.finished:
                    views.append(self.journaled_view(entry))
            elif (view := self._history.view(ticket_id, self._now())) and view.status != "pending":
                views.append(view)
        return views

    def has_ended(self, ticket: HeldTicket) -> bool:
        """Whether the ticket reads ended: it did, and the journal (if any) says so."""
        return ticket.finished_at is not None and not self._writes.end_unwritten(ticket.id)

    async def held_view(self, ticket: HeldTicket) -> TicketView:
        if self._writes.end_unwritten(ticket.id):
            return unfinished_view(ticket.id, ticket)
        if self._releases.past_ttl(ticket.finished_at):  # exact, though the reaper comes by later
            return released_view(ticket.id, ticket.submitted_at)
        result = None
        if ticket.status == "completed":
            result = (await ticket.result_of.outcomes())[ticket.index]
        return ticket_view(ticket.id, ticket, result)

    def journaled_view(self, entry: JournalEntry) -> TicketView:
        """A ticket's view from its journal entry. One finished longer ago than the TTL
        reads released: the entry outlives it (``IdHistory.longest_life_s``) only so that an
        id the journal does not hold can be told to have never arrived."""
        if self._releases.past_ttl(entry.finished_at):
            return released_view(entry.ticket, entry.submitted_at)
        return ticket_view(entry.ticket, entry, entry.result)
