"""Ticket lifecycles for the unit tests: made on a journal of the test's choosing, with
scripted stage two, stopped at the end; and a journal whose faults the test drives."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from multistage.config import TicketPolicy
from multistage.journal import JournalArgs, JournalEntry, TicketJournal, open_journal
from multistage.models.records import Record
from multistage.store.lifecycle import TicketLifecycle
from multistage.tickets.ids import DEFAULT_TENANT, TicketIds
from multistage.tickets.wire import Submission
from multistage_client.models import TicketView

from .stage_two import ScriptedStageTwo

IDS = TicketIds(bytes(range(32)))
RECORD = Record(features=np.zeros(4, dtype=np.float32))
# Fast: a batch written every 5 ms, a lease renewed every 50 ms and lapsed after 200 ms.
FLUSH_EVERY_S = 0.005
LEASE_S = 0.2


def issue(clock: Callable[[], float], tenant: str = DEFAULT_TENANT) -> str:
    return IDS.issue(clock(), tenant)


def submission(
    ticket: str,
    deadline: float | None = None,
    tenant: str = DEFAULT_TENANT,
    tenant_limit: int | None = None,
) -> Submission:
    return Submission(
        ticket=ticket,
        record=RECORD,
        deadline=deadline,
        stage_one_label="ok",
        tenant=tenant,
        tenant_limit=tenant_limit,
    )


class FaultyJournal:
    """A journal that refuses or fails what the test says, and otherwise is ``inner``."""

    def __init__(self, inner: TicketJournal) -> None:
        self.inner = inner
        self.writes_fail = False  # write raises, as a journal that is down
        self.leases_fail = False  # renew_lease raises
        self.refuse: set[str] = set()  # write says another replica holds these

    async def write(self, entries: list[JournalEntry], keep_s: float) -> set[str]:
        if self.writes_fail:
            raise ConnectionError("the journal is down")
        mine = [e for e in entries if e.ticket not in self.refuse]
        refused = await self.inner.write(mine, keep_s)
        return refused | {e.ticket for e in entries if e.ticket in self.refuse}

    async def read(self, ticket_ids: list[str]) -> dict[str, JournalEntry]:
        return await self.inner.read(ticket_ids)

    async def renew_lease(self, owner: str, lease_s: float) -> None:
        if self.leases_fail:
            raise ConnectionError("the journal is down")
        await self.inner.renew_lease(owner, lease_s)

    async def take_orphans(self, owner: str) -> list[JournalEntry]:
        return await self.inner.take_orphans(owner)

    async def request_cancel(self, ticket: str, owner: str) -> None:
        await self.inner.request_cancel(ticket, owner)

    async def take_cancel_requests(self, owner: str) -> list[str]:
        return await self.inner.take_cancel_requests(owner)

    async def close(self) -> None:
        await self.inner.close()


class Stores:
    """Ticket lifecycles on one journal (``journal_args``), each its own replica."""

    def __init__(self, journal_args: JournalArgs, clock: Callable[[], float]) -> None:
        self.journal_args = journal_args
        self.clock = clock
        self._started: list[tuple[TicketLifecycle, TicketJournal]] = []

    async def start(
        self,
        stage_two: ScriptedStageTwo | None = None,
        owner: str = "a",
        **policy: object,
    ) -> tuple[TicketLifecycle, ScriptedStageTwo, FaultyJournal]:
        stage_two = stage_two or ScriptedStageTwo()
        journal = FaultyJournal(open_journal(self.journal_args))
        store = TicketLifecycle(
            owner=owner,
            policy=TicketPolicy(**policy),
            ids=IDS,
            journal=journal,
            journal_args=self.journal_args,
            stage_two=stage_two,
            clock=self.clock,
        )
        await store.start()
        self._started.append((store, journal))
        return store, stage_two, journal

    async def stop_all(self) -> None:
        for store, journal in self._started:
            await store.stop()
            await journal.close()


async def ended(store: TicketLifecycle, ticket: str, timeout_s: float = 5) -> TicketView:
    """The ticket's view once it reads ended."""
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        reply = await store.wait_ended([ticket], wait_s=0.2)
        if reply.ended:
            return reply.ended[0]
    raise TimeoutError(f"{ticket} did not end in {timeout_s}s: {await store.view(ticket)}")
