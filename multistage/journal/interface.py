"""What the ticket store needs of a journal backend."""

from __future__ import annotations

from typing import Protocol

from multistage.journal.entry import JournalEntry


class TicketJournal(Protocol):
    """What the ticket store needs of a backend. Writes come in batches; each method is
    one round trip (or one transaction)."""

    async def write(self, entries: list[JournalEntry], keep_s: float) -> set[str]:
        """Insert or update the entries; finished ones expire ``keep_s`` after their ticket
        was issued (``submitted_at``). An entry without a record keeps the one written.

        An entry replaces only one its owner holds unfinished: a finished ticket never
        changes (the first end written wins), and a replica that lost a ticket to another
        (its lease lapsed) writes it no more. Returns the tickets refused so.
        """

    async def read(self, ticket_ids: list[str]) -> dict[str, JournalEntry]:
        """Those of the tickets the journal holds, without their records (kept apart:
        reads of a peer's tickets are frequent, and need only the status)."""

    async def renew_lease(self, owner: str, lease_s: float) -> None:
        """``owner`` is alive for ``lease_s`` more."""

    async def take_orphans(self, owner: str) -> list[JournalEntry]:
        """Move the unfinished tickets of owners whose lease lapsed to ``owner``; each
        orphan goes to exactly one caller."""

    async def request_cancel(self, ticket: str, owner: str) -> None:
        """Ask ``owner``, which holds the ticket, to cancel it."""

    async def take_cancel_requests(self, owner: str) -> list[str]:
        """The tickets others asked ``owner`` to cancel since it last took them."""

    async def close(self) -> None: ...
