"""What the ticket store holds of a ticket while it lives, and of a stage-two call that
carries several tickets: plain records, whose rules are ``lifecycle``'s."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from multistage.models.records import Record
from multistage.store.stage_two import StageTwoCall
from multistage.tickets.ids import DEFAULT_TENANT
from multistage_client.models import ErrorBody, TicketStatus


@dataclass
class HeldTicket:
    id: str
    record: Record | None  # kept until the ticket ends, for retries
    deadline: float | None
    submitted_at: float  # when its ingress replica issued it
    stage_one_label: str | None
    request_id: str = ""  # the HTTP request that issued it
    tenant: str = DEFAULT_TENANT
    status: TicketStatus = "pending"
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    # The stage-two call whose outcomes hold this ticket's result, once it completed, and
    # which one is this ticket's.
    result_of: StageTwoCall | None = None
    index: int = 0
    error: ErrorBody | None = None
    call: SharedCall | None = None  # set once dispatched


@dataclass
class SharedCall:
    """One stage-two call and the tickets it carries."""

    tickets: list[HeldTicket]
    task: asyncio.Task | None = None  # held: the event loop keeps only weak references
