"""What the ingress and the ticket store send each other (inside the cluster only).

These travel as Ray arguments and results between replicas of this application; nothing
a client sends is ever deserialized this way (client bodies are JSON, parsed by
``multistage/models/records.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from multistage.models.records import Record
from multistage.tickets.ids import DEFAULT_TENANT
from multistage_client.models import TicketView


@dataclass(frozen=True, slots=True)
class Submission:
    """One ticket's stage-two work, sent by the ingress replica that issued the ticket."""

    ticket: str
    record: Record
    deadline: float | None  # epoch seconds; None: no deadline
    stage_one_label: str  # to count how often stage two revises stage one
    request_id: str = ""  # the HTTP request that issued the ticket (X-Request-ID), for logs
    tenant: str = DEFAULT_TENANT  # whose ticket it is
    tenant_limit: int | None = None  # the tenant's cap on unfinished tickets; None: none


@dataclass(frozen=True, slots=True)
class StoreLoad:
    """The store's admission state, reported with every answer to an ingress replica."""

    unfinished: int
    max_unfinished: int

    @property
    def room(self) -> int:
        """How many more tickets stage two takes before it rejects work."""
        return self.max_unfinished - self.unfinished


@dataclass(frozen=True, slots=True)
class WaitReply:
    """The tickets of a shared wait that have ended, and the store's load."""

    ended: list[TicketView]
    load: StoreLoad
