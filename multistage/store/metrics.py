"""What the ticket lifecycle counts, for the metrics its deployment exports; without
them (the unit tests), nothing is counted."""

from __future__ import annotations

from typing import Protocol

from multistage_client.models import TicketStatus


class LifecycleMetrics(Protocol):
    def rejected(self, reason: str, tenant: str) -> None: ...

    def finished(self, status: TicketStatus, time_to_result_ms: float | None) -> None: ...

    def compared(self, stage_one_label: str, stage_two_label: str) -> None: ...


class NoMetrics:
    def rejected(self, reason: str, tenant: str) -> None:
        pass

    def finished(self, status: TicketStatus, time_to_result_ms: float | None) -> None:
        pass

    def compared(self, stage_one_label: str, stage_two_label: str) -> None:
        pass
