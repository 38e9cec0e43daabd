"""The journal that writes nothing (``journal.backend: memory``): tickets live only in
their store replica's memory, the fastest, for one store replica only."""

from __future__ import annotations

from multistage.journal.entry import JournalEntry


class MemoryJournal:
    """Writes nothing: tickets live only in their store replica's memory."""

    async def write(self, entries: list[JournalEntry], keep_s: float) -> set[str]:
        return set()

    async def read(self, ticket_ids: list[str]) -> dict[str, JournalEntry]:
        return {}

    async def renew_lease(self, owner: str, lease_s: float) -> None:
        pass

    async def take_orphans(self, owner: str) -> list[JournalEntry]:
        return []

    async def request_cancel(self, ticket: str, owner: str) -> None:
        pass

    async def take_cancel_requests(self, owner: str) -> list[str]:
        return []

    async def close(self) -> None:
        pass
