"""What a store replica can say of a ticket it holds no record of, from its id alone.

An id this service issued (its signature holds) that the replica does not hold is on its
way (its submission not here yet), or was released after its TTL, or was held by a replica
that is gone, or never reached any store. Telling these apart takes when this replica
started and what it released: ``IdHistory`` keeps both.
"""

from __future__ import annotations

from multistage.config import TicketPolicy
from multistage.tickets.ids import TicketIds
from multistage.tickets.views import in_transit_view, lost_view, released_view
from multistage_client.models import TicketView


class IdHistory:
    def __init__(
        self, ids: TicketIds, policy: TicketPolicy, durable: bool, started_at: float
    ) -> None:
        self._ids = ids
        self._policy = policy
        self._durable = durable
        # Ids issued before this moment that it has no record of were held by a replica
        # that is gone, or are still on their way here.
        self._started_at = started_at
        # The latest issue time of a released ticket: unknown ids issued no later may
        # have been released, where later ones never arrived. Ids released while their
        # submissions could still be on their way (sent again) are remembered exactly.
        self._released_up_to = 0.0
        self._recently_released: dict[str, float] = {}  # id -> when it was issued

    @property
    def longest_life_s(self) -> float:
        """From issue to release, at the longest: the journal keeps a finished ticket as
        long, so an id it does not hold within that time never reached a store."""
        return self._policy.timeout_s + self._policy.result_ttl_s

    def accepts(self, issued_at: float, now: float) -> bool:
        """Whether a submission of a ticket issued then is taken now."""
        if now - issued_at > self._policy.submission_timeout_s:
            return False
        # Issued before this replica started: its submission was sent again after the
        # previous replica failed to take it, and is welcome within the grace.
        return issued_at >= self._started_at or now <= self._resubmissions_end

    def was_released(self, ticket_id: str) -> bool:
        """Released so recently that its submission, sent again, may still arrive."""
        return ticket_id in self._recently_released

    def released(self, ticket_id: str, issued_at: float, now: float) -> None:
        self._released_up_to = max(self._released_up_to, issued_at)
        if now - issued_at <= self._policy.submission_timeout_s:
            self._recently_released[ticket_id] = issued_at

    def forget_old(self, now: float) -> None:
        """Forget the releases whose submissions can no longer arrive."""
        in_transit_since = now - self._policy.submission_timeout_s
        self._recently_released = {
            ticket_id: issued_at
            for ticket_id, issued_at in self._recently_released.items()
            if issued_at >= in_transit_since
        }

    def view(self, ticket_id: str, now: float) -> TicketView | None:
        """What became of the ticket; None if this service never issued the id."""
        issued_at = self._ids.issued_at(ticket_id)
        if issued_at is None:
            return None
        if ticket_id in self._recently_released:
            return released_view(ticket_id, issued_at)
        if now - issued_at <= self._policy.submission_timeout_s and (
            issued_at >= self._started_at or now <= self._resubmissions_end
        ):
            return in_transit_view(ticket_id, issued_at)
        before_start = issued_at < self._started_at
        if issued_at + self.longest_life_s <= now and (self._durable or before_start):
            return released_view(ticket_id, issued_at)
        if before_start and not self._durable:
            return lost_view(ticket_id, issued_at, "the ticket store restarted after it")
        if issued_at <= self._released_up_to:
            return released_view(ticket_id, issued_at)
        return lost_view(ticket_id, issued_at, "its submission never reached the ticket store")

    @property
    def _resubmissions_end(self) -> float:
        return self._started_at + self._policy.resubmit_grace_s
