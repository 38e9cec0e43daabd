"""What the ticket store needs of stage two: something that starts a call for some
records (``StageTwo``), and the call, which a replica accepts, then answers with each
record's outcome. The deployment's is the heavy deployment's handle; the unit tests' is
scripted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from multistage.models.records import Record
from multistage.tickets import errors as ticket_errors
from multistage_client.errors import MultistageError
from multistage_client.models import ErrorBody, Prediction, TicketStatus

Outcome = Prediction | ErrorBody


class StageTwoReplicaLost(MultistageError):
    """The replica running a stage-two call died under it: the call may be made again."""


class StageTwoCall(Protocol):
    """One stage-two call, started."""

    async def accepted(self) -> None:
        """Until a replica has taken the call."""

    async def outcomes(self) -> Sequence[Outcome]:
        """Each record's outcome, in order; may be awaited again once the call ended."""

    def cancel(self) -> None: ...


class StageTwo(Protocol):
    def __call__(
        self, records: list[Record], deadlines: list[float | None], tickets: list[str]
    ) -> StageTwoCall: ...


def ending(outcome: Outcome) -> tuple[TicketStatus, ErrorBody | None, Prediction | None]:
    """How a ticket ends, given its record's outcome from stage two."""
    if isinstance(outcome, Prediction):
        return "completed", None, outcome
    expired = outcome.error == ticket_errors.DEADLINE_PASSED
    return ("expired" if expired else "failed"), outcome, None
