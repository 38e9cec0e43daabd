"""What a read of a ticket answers (``TicketView``): from the store's record of it or its
journal entry, and, for tickets the store holds no record of, from the id alone: lost,
released, or still on its way. Both the ingress and the store answer with them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

from multistage.tickets import errors as ticket_errors
from multistage_client.models import ErrorBody, Prediction, TicketStatus, TicketView


class TicketState(Protocol):
    """What a view is made from: the store's record of a ticket, or its journal entry."""

    status: TicketStatus
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    error: ErrorBody | None


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


def ticket_view(ticket_id: str, state: TicketState, result: Prediction | None) -> TicketView:
    """A ticket's view, from this replica's record of it or from its journal entry (held
    by a peer, or by a replica gone): both carry the same fields."""
    view = TicketView(
        ticket=ticket_id,
        status=state.status,
        submitted_at=utc(state.submitted_at),
        started_at=utc(state.started_at),
        finished_at=utc(state.finished_at),
        attempts=state.attempts,
        error=state.error,
    )
    if result is not None and state.finished_at is not None:
        latency_ms = (state.finished_at - state.submitted_at) * 1000
        view.result = result.model_copy(update={"latency_ms": round(latency_ms, 3)})
    return view


def unfinished_view(ticket_id: str, state: TicketState) -> TicketView:
    """A ticket that ended, as it read before: the journal does not hold its end yet."""
    return TicketView(
        ticket=ticket_id,
        status="running" if state.started_at else "pending",
        submitted_at=utc(state.submitted_at),
        started_at=utc(state.started_at),
        attempts=state.attempts,
    )
