"""Where the ticket store writes its tickets down (``args.journal``), and the backend
that configuration names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from multistage.journal.interface import TicketJournal
from multistage.journal.memory import MemoryJournal


class JournalArgs(BaseModel):
    """Where the ticket store writes its tickets down (``args.journal``)."""

    backend: Literal["memory", "sqlite", "redis"] = Field(
        "memory",
        description="memory: tickets die with their store replica; sqlite: a file on the "
        "node (store replicas on one node); redis: a server (store replicas anywhere).",
    )
    path: Path = Field(
        Path("state/journal.sqlite"),
        description="sqlite: the file, one per application (relative: to where the app is built).",
    )
    url: str = Field("redis://127.0.0.1:6379/0", description="redis: the server.")
    key_prefix: str = Field("multistage", description="redis: prefix of this application's keys.")
    flush_every_s: float = Field(
        0.02,
        gt=0,
        description="Changes are written in one batch at most this often; the store "
        "acknowledges a submission once it is written.",
    )
    lease_s: float = Field(
        5.0,
        gt=0,
        description="A store replica renews its lease a few times per lease; one whose "
        "lease lapsed is gone, and its unfinished tickets are taken by another.",
    )

    @property
    def durable(self) -> bool:
        return self.backend != "memory"


def open_journal(args: JournalArgs) -> TicketJournal:
    """The configured backend (imported only when used: a memory journal needs neither
    sqlite3's thread nor a Redis client)."""
    if args.backend == "sqlite":
        from multistage.journal.sqlite import SqliteJournal

        return SqliteJournal(args.path)
    if args.backend == "redis":
        from multistage.journal.redis import RedisJournal

        return RedisJournal(args.url, args.key_prefix)
    return MemoryJournal()
