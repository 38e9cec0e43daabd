"""The ticket journal in a SQLite file on the node's disk (``journal.backend: sqlite``).

One file serves every store replica of an application on one node (WAL mode: readers
never wait for the writer). Each replica talks to it from one thread of its own, so the
event loop never waits on the disk. ``synchronous=NORMAL``: a write survives the
store's process dying at once; the last moments before a power cut may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from multistage.journal.entry import JournalEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    finished INTEGER NOT NULL,
    expires_at REAL,
    entry TEXT NOT NULL,
    record TEXT
);
CREATE INDEX IF NOT EXISTS unfinished_by_owner ON tickets (owner) WHERE finished = 0;
CREATE INDEX IF NOT EXISTS finished_by_expiry ON tickets (expires_at) WHERE finished = 1;
CREATE TABLE IF NOT EXISTS leases (owner TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cancels (id TEXT PRIMARY KEY, owner TEXT NOT NULL);
"""
# A record is written once, with the ticket's first entry, and dropped when it ends.
_UPSERT = """
INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
    owner = excluded.owner, finished = excluded.finished, expires_at = excluded.expires_at,
    entry = excluded.entry,
    record = CASE WHEN excluded.finished THEN NULL ELSE coalesce(excluded.record, record) END
"""
_EXPIRE_EVERY_S = 1.0
# The layout above; a file of another layout is refused, never misread.
_LAYOUT_VERSION = 1


class SqliteJournal:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._db: sqlite3.Connection | None = None
        self._expired_at = 0.0

    async def write(self, entries: list[JournalEntry], keep_s: float) -> set[str]:
        now = time.time()
        rows = [
            (
                e.ticket,
                e.owner,
                e.finished,
                e.submitted_at + keep_s if e.finished else None,
                e.model_dump_json(exclude={"owner", "record"}),
                None if e.finished else e.record,
            )
            for e in entries
        ]
        expire = now - self._expired_at >= _EXPIRE_EVERY_S
        if expire:
            self._expired_at = now
        return await self._run(self._write, rows, now if expire else None)

    async def read(self, ticket_ids: list[str]) -> dict[str, JournalEntry]:
        rows = await self._run(self._select, ticket_ids)
        return {row[0]: _entry(*row[1:]) for row in rows}

    async def renew_lease(self, owner: str, lease_s: float) -> None:
        await self._run(self._renew, owner, time.time() + lease_s)

    async def take_orphans(self, owner: str) -> list[JournalEntry]:
        rows = await self._run(self._take, owner, time.time())
        return [_entry(owner, entry, record) for entry, record in rows]

    async def request_cancel(self, ticket: str, owner: str) -> None:
        await self._run(self._request_cancel, ticket, owner)

    async def take_cancel_requests(self, owner: str) -> list[str]:
        return [ticket for (ticket,) in await self._run(self._take_cancels, owner)]

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
        self._thread.shutdown(wait=False)

    async def _run(self, work, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    # What follows runs on the journal's own thread.

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            with _transaction(db):
                _check_layout(db, self._path)
            self._db = db
        return self._db

    def _write(self, rows: list[tuple], expire_before: float | None) -> set[str]:
        db = self._connection()
        with _transaction(db):
            refused = self._refused(db, rows)
            accepted = [row for row in rows if row[0] not in refused]
            db.executemany(_UPSERT, accepted)
            if expire_before is not None:
                db.execute(
                    "DELETE FROM tickets WHERE finished = 1 AND expires_at < ?", (expire_before,)
                )
        return refused

    def _refused(self, db: sqlite3.Connection, rows: list[tuple]) -> set[str]:
        """Those of the rows' tickets that are finished, or held by another owner."""
        owners = {row[0]: row[1] for row in rows}
        held = _tickets_by_id(db, "id, owner, finished", list(owners))
        return {ticket for ticket, owner, finished in held if finished or owner != owners[ticket]}

    def _select(self, ticket_ids: list[str]) -> list[tuple]:
        return _tickets_by_id(self._connection(), "id, owner, entry", ticket_ids)

    def _renew(self, owner: str, expires_at: float) -> None:
        db = self._connection()
        db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?)", (owner, expires_at))

    def _take(self, owner: str, now: float) -> list[tuple]:
        db = self._connection()
        with _transaction(db):
            rows = db.execute(
                "UPDATE tickets SET owner = ?1 WHERE finished = 0 AND owner != ?1 AND owner"
                " NOT IN (SELECT owner FROM leases WHERE expires_at >= ?2) RETURNING entry, record",
                (owner, now),
            ).fetchall()
            db.execute("DELETE FROM leases WHERE expires_at < ?", (now,))
        return rows

    def _request_cancel(self, ticket: str, owner: str) -> None:
        self._connection().execute("INSERT OR REPLACE INTO cancels VALUES (?, ?)", (ticket, owner))

    def _take_cancels(self, owner: str) -> list[tuple]:
        db = self._connection()
        # Asked often and mostly empty: a read first, so no write lock is taken for nothing.
        if db.execute("SELECT 1 FROM cancels WHERE owner = ? LIMIT 1", (owner,)).fetchone():
            query = "DELETE FROM cancels WHERE owner = ? RETURNING id"
            return db.execute(query, (owner,)).fetchall()
        return []


def _tickets_by_id(db: sqlite3.Connection, columns: str, ticket_ids: list[str]) -> list[tuple]:
    marks = ",".join("?" * len(ticket_ids))
    query = f"SELECT {columns} FROM tickets WHERE id IN ({marks})"  # noqa: S608 - ours and marks only
    return db.execute(query, ticket_ids).fetchall()


def _check_layout(db: sqlite3.Connection, path: Path) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    (tables,) = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    if tables == 0:
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {_LAYOUT_VERSION}")
    elif version != _LAYOUT_VERSION:
        raise RuntimeError(
            f"{path} holds a ticket journal of another layout ({version}, not "
            f"{_LAYOUT_VERSION}): move it away, or point journal.path elsewhere"
        )


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front: two replicas taking orphans at
    once never both read the same ones."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _entry(owner: str, entry: str, record: str | None = None) -> JournalEntry:
    return JournalEntry.model_validate_json(entry).model_copy(
        update={"owner": owner, "record": record}
    )
