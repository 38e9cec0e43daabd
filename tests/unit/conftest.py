"""Fixtures of the unit tests.

Ray is never imported here, directly or through what the tests import: the session
checks it at its end when it ran only these tests (``pytest tests/unit``).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

from multistage.journal import JournalArgs

from .lifecycle_harness import FLUSH_EVERY_S, LEASE_S, Stores

UNIT = Path(__file__).parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def ray_never_imported(request):
    yield
    only_unit = all(Path(item.path).is_relative_to(UNIT) for item in request.session.items)
    if only_unit:
        loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
        assert not loaded, f"the unit tests imported Ray: {loaded[:5]}"


class Clock:
    """Wall-clock time, which a test moves forward at will."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _journal_args(kind: str, request, tmp_path: Path) -> JournalArgs:
    timing = {"flush_every_s": FLUSH_EVERY_S, "lease_s": LEASE_S}
    if kind == "sqlite":
        return JournalArgs(backend="sqlite", path=tmp_path / "journal.sqlite", **timing)
    if kind == "redis":
        url = request.getfixturevalue("redis_url")  # skipped where no server is installed
        return JournalArgs(backend="redis", url=url, key_prefix=uuid.uuid4().hex, **timing)
    return JournalArgs(backend="memory", **timing)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def journal_args(request, tmp_path) -> JournalArgs:
    return _journal_args(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def durable_journal_args(request, tmp_path) -> JournalArgs:
    return _journal_args(request.param, request, tmp_path)


@pytest.fixture
async def stores(journal_args, clock):
    """Ticket lifecycles on each journal: memory, SQLite, Redis."""
    made = Stores(journal_args, clock)
    yield made
    await made.stop_all()


@pytest.fixture
async def durable_stores(durable_journal_args, clock):
    """Ticket lifecycles sharing a durable journal (SQLite, Redis), as replicas do."""
    made = Stores(durable_journal_args, clock)
    yield made
    await made.stop_all()
