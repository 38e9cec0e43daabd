"""When the ticket store lets go of a finished ticket: at its TTL, or earlier, oldest
first, while the store is full. Its id's history answers for it from then on
(``id_history``)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from multistage.config import TicketPolicy
from multistage.store.held import HeldTicket
from multistage.store.id_history import IdHistory


class Releases:
    """The finished tickets of ``held`` (the lifecycle's tickets, by id), released from it
    in time."""

    def __init__(
        self,
        *,
        policy: TicketPolicy,
        history: IdHistory,
        clock: Callable[[], float],
        held: dict[str, HeldTicket],
    ) -> None:
        self._policy = policy
        self._history = history
        self._now = clock
        self._held = held
        # Finished tickets in finish order; with one TTL that is also release order.
        self._finished: deque[tuple[float, str]] = deque()

    def finished(self, ticket: HeldTicket) -> None:
        """Release the ticket, just finished, at its TTL."""
        self._finished.append((ticket.finished_at + self._policy.result_ttl_s, ticket.id))

    def past_ttl(self, finished_at: float | None) -> bool:
        return finished_at is not None and finished_at + self._policy.result_ttl_s <= self._now()

    def make_room(self) -> None:
        """Release the oldest finished tickets while the store is full."""
        while len(self._held) >= self._policy.max_held and self._finished:
            self._release_oldest()

    async def release_expired_forever(self, running: Callable[[], bool]) -> None:
        interval = min(1.0, self._policy.result_ttl_s / 2)
        while running():
            self.release_expired()
            await asyncio.sleep(interval)

    def release_expired(self) -> None:
        """Release the tickets past their TTL."""
        now = self._now()
        while self._finished and self._finished[0][0] <= now:
            self._release_oldest()
        self._history.forget_old(now)

    def _release_oldest(self) -> None:
        # Dropping a ticket drops its call's result, which frees it in stage two's store.
        _, ticket_id = self._finished.popleft()
        ticket = self._held.pop(ticket_id, None)
        if ticket is not None:
            self._history.released(ticket_id, ticket.submitted_at, self._now())
