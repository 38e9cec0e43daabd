"""Views of tickets the store cannot show from a record of its own: lost, expired, or
still on their way to it. Both the ingress and the store answer with them."""

from __future__ import annotations

from datetime import datetime, timezone

from multistage import ticket_errors
from multistage.client.models import TicketView


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


def lost_view(ticket: str, issued_at: float, why: str) -> TicketView:
    return TicketView(
        ticket=ticket,
        status="lost",
        submitted_at=utc(issued_at),
        error=ticket_errors.ticket_lost(why),
    )


def released_view(ticket: str, issued_at: float) -> TicketView:
    return TicketView(
        ticket=ticket,
        status="expired",
        submitted_at=utc(issued_at),
        error=ticket_errors.result_expired(),
    )


def in_transit_view(ticket: str, issued_at: float) -> TicketView:
    """A ticket issued by an ingress replica whose submission has not reached the store yet."""
    return TicketView(ticket=ticket, status="pending", submitted_at=utc(issued_at))
