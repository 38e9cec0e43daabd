"""The ticket journal: what the ticket store writes down so that no ticket dies with it.

Each ticket store replica holds its tickets in memory (and stage two's results by Ray
object reference: the fast path) and writes every change of a ticket to a journal, in
batches. The journal holds a ticket's record until stage two has run it, its status and
timestamps, and its result once completed. A replica that starts, or one whose peer
stopped renewing its lease, takes the unfinished tickets of owners that are gone and
runs them again (at least once; ``attempts`` counts every run).

Backends (``JournalArgs.backend``):

- ``memory``: nothing is written; tickets die with the replica holding them (the
  fastest; one store replica only);
- ``sqlite``: a file on the node's disk, shared by the store replicas on that node;
- ``redis``: a Redis (or Valkey) server, for store replicas on many nodes.

Entries are JSON; a record travels as an ``.npz`` of its arrays, read back with
``allow_pickle=False``: nothing in the journal is ever unpickled.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from multistage.api import ErrorBody, Prediction, TicketStatus
from multistage.records import Record
from multistage.ticket_ids import DEFAULT_TENANT


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


class JournalEntry(BaseModel):
    """One ticket as the journal holds it."""

    ticket: str
    owner: str = Field("", description="The store replica that runs it.")
    status: TicketStatus
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    error: ErrorBody | None = None
    deadline: float | None = None
    stage_one_label: str | None = None
    request_id: str = ""
    tenant: str = DEFAULT_TENANT
    record: str | None = Field(
        None, description="The record (encode_record): written with the ticket's first entry."
    )
    result: Prediction | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


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


def open_journal(args: JournalArgs) -> TicketJournal:
    """The configured backend (imported only when used: a memory journal needs neither)."""
    if args.backend == "sqlite":
        from multistage.journal_sqlite import SqliteJournal

        return SqliteJournal(args.path)
    if args.backend == "redis":
        from multistage.journal_redis import RedisJournal

        return RedisJournal(args.url, args.key_prefix)
    return MemoryJournal()


def encode_record(record: Record) -> str:
    arrays = {"features": record.features}
    if record.image is not None:
        arrays["image"] = record.image
    arrays |= {f"text.{name}": ids for name, ids in record.texts.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_record(encoded: str) -> Record:
    with np.load(io.BytesIO(base64.b64decode(encoded)), allow_pickle=False) as arrays:
        texts = {key[5:]: arrays[key] for key in arrays.files if key.startswith("text.")}
        image = arrays["image"] if "image" in arrays.files else None
        return Record(features=arrays["features"], image=image, texts=texts)
