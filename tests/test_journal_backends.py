"""The ticket journal's backends, each against the real thing: a SQLite file, and the
session's Redis server (``redis_url`` in ``conftest.py``)."""

import asyncio
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from multistage.journal import JournalEntry, decode_record, encode_record
from multistage.journal.redis import RedisJournal
from multistage.journal.sqlite import SqliteJournal
from multistage.models.records import Record
from multistage_client.models import ErrorBody, ModelInfo, Prediction


class Journals:
    """Opens journals on one backend, all sharing one store of data (as a service's store
    replicas do), none another test's; ``close`` them in the loop that used them."""

    def __init__(self, sqlite_path: Path, redis_url: str | None) -> None:
        self._sqlite_path, self._redis_url = sqlite_path, redis_url
        self._prefix = f"test-{time.monotonic_ns()}"
        self._opened = []

    def open(self):
        if self._redis_url is None:
            journal = SqliteJournal(self._sqlite_path)
        else:
            journal = RedisJournal(self._redis_url, self._prefix)
        self._opened.append(journal)
        return journal

    async def close(self) -> None:
        for journal in self._opened:
            await journal.close()


@pytest.fixture(params=["sqlite", "redis"])
def journals(request, tmp_path) -> Journals:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Journals(tmp_path / "journal.sqlite", url)


def _error(message: str) -> ErrorBody:
    return ErrorBody(error="model_failed", message=message)


def _entry(ticket: str, owner: str, **fields) -> JournalEntry:
    record = Record(
        features=np.arange(4, dtype=np.float32),
        image=np.full((2, 2, 3), 7, dtype=np.uint8),
        texts={"note": np.array([5, 6, 0], dtype=np.int64)},
    )
    defaults = {"status": "pending", "submitted_at": time.time(), "record": encode_record(record)}
    return JournalEntry(ticket=ticket, owner=owner, **(defaults | fields))


def test_a_record_comes_back_as_it_went_in():
    record = Record(
        features=np.array([1.5, -2.0], dtype=np.float32),
        image=np.arange(12, dtype=np.uint8).reshape(2, 2, 3),
        texts={"note": np.array([3, 4, 0], dtype=np.int64)},
    )
    back = decode_record(encode_record(record))
    np.testing.assert_array_equal(back.features, record.features)
    np.testing.assert_array_equal(back.image, record.image)
    np.testing.assert_array_equal(back.texts["note"], record.texts["note"])
    assert back.features.dtype == np.float32 and back.texts["note"].dtype == np.int64
    assert decode_record(encode_record(Record(features=record.features))).image is None


def test_entries_are_read_back_and_finished_ones_expire(journals):
    async def scenario():
        journal = journals.open()
        result = Prediction(
            label="ok",
            scores={"ok": 0.9, "defect": 0.1},
            model=ModelInfo(name="m", version="1"),
            latency_ms=0.0,
        )
        now = time.time()
        done = _entry("done", "a", status="completed", finished_at=now, record=None, result=result)
        await journal.write([_entry("open", "a"), done], keep_s=0.5)
        read = await journal.read(["open", "done", "never"])
        assert set(read) == {"open", "done"}
        assert read["done"].result == result
        assert read["open"].record is None  # records are kept apart, for the taker
        await asyncio.sleep(1.2)
        # The expiry of a finished entry is the backend's own (SQLite: on a later write).
        await journal.write([_entry("later", "a")], keep_s=0.5)
        assert set(await journal.read(["open", "done"])) == {"open"}
        await journals.close()

    asyncio.run(scenario())


def test_a_gone_owners_unfinished_tickets_go_to_exactly_one_taker(journals):
    async def scenario():
        gone, first, second = journals.open(), journals.open(), journals.open()
        await gone.renew_lease("gone", lease_s=0.3)
        await gone.write([_entry(f"t{i}", "gone") for i in range(20)], keep_s=60)
        # Later entries come without the record: the journal keeps the one written first.
        started = [_entry(f"t{i}", "gone", status="running", record=None) for i in range(20)]
        await gone.write(started, keep_s=60)
        finished = _entry("t-done", "gone", status="failed", finished_at=time.time())
        await gone.write([finished], keep_s=60)
        await first.renew_lease("first", lease_s=30)
        await second.renew_lease("second", lease_s=30)
        # While its lease holds, nobody takes its tickets.
        assert await first.take_orphans("first") == []
        await asyncio.sleep(0.5)
        taken = await asyncio.gather(first.take_orphans("first"), second.take_orphans("second"))
        ids = [e.ticket for batch in taken for e in batch]
        # Each comes with its record, to be run again.
        records = [decode_record(e.record) for batch in taken for e in batch]
        assert all(r.image is not None and r.texts["note"].dtype == np.int64 for r in records)
        assert sorted(ids) == sorted(f"t{i}" for i in range(20))  # each once, none finished
        for batch, taker in zip(taken, ["first", "second"], strict=True):
            assert all(entry.owner == taker for entry in batch)
        assert await first.take_orphans("first") == []  # taken once only
        await journals.close()

    asyncio.run(scenario())


def test_a_finished_ticket_never_changes_and_a_replaced_owner_writes_no_more(journals):
    async def scenario():
        slow, taker = journals.open(), journals.open()
        await slow.renew_lease("slow", lease_s=0.2)
        await slow.write([_entry("t1", "slow"), _entry("t2", "slow")], keep_s=60)
        await asyncio.sleep(0.4)  # its lease lapsed, though it still runs
        await taker.renew_lease("taker", lease_s=30)
        assert {e.ticket for e in await taker.take_orphans("taker")} == {"t1", "t2"}
        # The slow owner's writes of tickets it lost are refused, and change nothing.
        running = _entry("t1", "slow", status="running", attempts=1)
        assert await slow.write([running, _entry("t3", "slow")], keep_s=60) == {"t1"}
        assert (await taker.read(["t1"]))["t1"].status == "pending"
        # The first end written wins; a later one, even its owner's, is refused.
        first = _entry(
            "t2", "taker", status="failed", finished_at=time.time(), error=_error("first")
        )
        assert await taker.write([first], keep_s=60) == set()
        again = _entry(
            "t2", "taker", status="failed", finished_at=time.time(), error=_error("again")
        )
        assert await taker.write([again], keep_s=60) == {"t2"}
        assert (await slow.read(["t2"]))["t2"].error == _error("first")
        # A taker's own unfinished tickets it goes on writing.
        assert await taker.write([_entry("t1", "taker", attempts=2)], keep_s=60) == set()
        await journals.close()

    asyncio.run(scenario())


def test_cancel_requests_reach_their_owner_once(journals):
    async def scenario():
        asker, owner = journals.open(), journals.open()
        await asker.request_cancel("t1", "owner")
        await asker.request_cancel("t2", "someone-else")
        assert await owner.take_cancel_requests("owner") == ["t1"]
        assert await owner.take_cancel_requests("owner") == []
        await journals.close()

    asyncio.run(scenario())


def test_a_sqlite_file_of_another_layout_is_refused_not_misread(tmp_path):
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        db.execute("CREATE TABLE tickets (id TEXT PRIMARY KEY, entry TEXT)")

    async def scenario():
        journal = SqliteJournal(tmp_path / "old.sqlite")
        with pytest.raises(RuntimeError, match="another layout"):
            await journal.read(["t1"])
        await journal.close()

    asyncio.run(scenario())
