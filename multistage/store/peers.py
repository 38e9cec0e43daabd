"""This ticket store replica among the others sharing its journal: the lease that says
it lives, the tickets of replicas whose lease lapsed, and cancels of tickets another
replica holds, asked for and answered through the journal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from multistage.journal import JournalEntry, TicketJournal
from multistage_client.errors import one_line

# How often a wait re-reads the journal for tickets a peer holds.
PEER_POLL_S = 0.1
# How long a cancel of a peer's ticket waits to see it canceled before answering 202.
PEER_CANCEL_WAIT_S = 5 * PEER_POLL_S

logger = logging.getLogger("ray.serve")


class Peers:
    """The journal's news of the other replicas, for the lifecycle to act on: it
    ``adopt``s the unfinished tickets of replicas that are gone, and ``cancel``s those of
    its own tickets a peer was asked to cancel."""

    def __init__(
        self,
        *,
        owner: str,
        journal: TicketJournal,
        lease_s: float,
        adopt: Callable[[list[JournalEntry]], None],
        cancel: Callable[[str], object],
    ) -> None:
        self._owner = owner
        self._journal = journal
        self._lease_s = lease_s
        self._adopt = adopt
        self._cancel = cancel

    async def join(self) -> None:
        """Take (or renew) this replica's lease and the tickets of owners that are gone."""
        await self._journal.renew_lease(self._owner, self._lease_s)
        self._adopt(await self._journal.take_orphans(self._owner))

    async def keep_lease_forever(self, running: Callable[[], bool]) -> None:
        """Renew this replica's lease and take the tickets of owners whose lease lapsed."""
        while running():
            await asyncio.sleep(self._lease_s / 4)
            try:
                await self.join()
            except Exception as error:  # noqa: BLE001 - a journal that is down: try again
                logger.warning("the ticket journal did not renew a lease: %s", one_line(error))

    async def take_cancel_requests_forever(self, running: Callable[[], bool]) -> None:
        """Cancel those of this replica's tickets that other replicas were asked to cancel,
        as often as a wait reads a peer's ticket: a cancel must beat the ticket's start."""
        while running():
            await asyncio.sleep(PEER_POLL_S)
            try:
                for ticket_id in await self._journal.take_cancel_requests(self._owner):
                    self._cancel(ticket_id)
            except Exception as error:  # noqa: BLE001 - a journal that is down: try again
                logger.warning("the ticket journal did not answer: %s", one_line(error))

    async def cancel(self, entry: JournalEntry) -> JournalEntry:
        """Ask the replica that holds an unfinished ticket to cancel it, and wait a moment
        for it to answer (it takes requests every peer poll, then writes the cancel): the
        ticket's entry then, unfinished if the cancel is still on its way."""
        await self._journal.request_cancel(entry.ticket, entry.owner)
        give_up_at = time.monotonic() + PEER_CANCEL_WAIT_S
        while not entry.finished and time.monotonic() < give_up_at:
            await asyncio.sleep(PEER_POLL_S)
            entry = (await self._journal.read([entry.ticket])).get(entry.ticket, entry)
        return entry
