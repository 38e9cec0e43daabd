"""The stream session protocol (``GET /v1/streams``, a WebSocket): its messages and codes.

One session is one feed (a camera, a sensor). The client sends records as JSON text
frames: the body of ``POST /v1/predict`` plus a ``seq`` of its choosing. For each
record the server sends two messages, both carrying that ``seq``: ``stage1`` at once,
then one terminal message when stage two ends (``stage2`` for a completed ticket, else
the ticket's status; ``rejected`` or ``unavailable`` when no ticket was issued). A
message the server cannot take gets one ``error`` message, naming the field and the
``seq`` where it could read them; the session stays open.

Control messages carry a ``type``; records carry none:

- ``{"type": "auth", "api_key": KEY}``: the first message, when a key is configured and
  the upgrade request's headers carried none (browsers cannot set them);
- ``{"type": "follow", "seq": S, "ticket": T}``: send ticket T's terminal message with
  ``seq`` S (a client that reconnected follows the tickets its old session issued).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from multistage_client.models import ErrorBody, PredictResponse, StageTwoStatus, TicketView

# A client's label for a record: echoed back, never interpreted.
Seq = int | str
MAX_SEQ_CHARS = 128
CONTROL_KEY = "type"

# Close codes (4000-4999 are the application's; RFC 6455 section 7.4.2).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_IDLE = 4408
CLOSE_BAD_SETTINGS = 1008  # policy violation: the session's settings were refused
CLOSE_SERVER_ERROR = 1011  # the server failed; the cause is in its log


class SessionSettings(BaseModel):
    """What a session asks for when it opens, as query parameters of the upgrade request."""

    frame_interval_s: float = Field(
        0.1, gt=0, le=60, description="Seconds between the feed's records (0.1 at 10/s)."
    )
    stage_two_deadline_s: float | None = Field(
        None,
        gt=0,
        description="Stage two must start within this long after a record arrives, or the "
        "record's ticket reads 'expired'; default streams.deadline_frames frame intervals.",
    )
    max_unfinished: int | None = Field(
        None,
        gt=0,
        description="The session's bound on records whose stage two has not ended; at most "
        "(and by default) streams.max_unfinished.",
    )


class Ready(BaseModel):
    """The first message of an open session: the settings in force."""

    type: Literal["ready"] = "ready"
    replica: str = Field(description="The ingress replica holding the session.")
    stage_two_deadline_s: float
    max_unfinished: int
    idle_timeout_s: float
    max_message_bytes: int


class StageOneMessage(PredictResponse):
    type: Literal["stage1"] = "stage1"
    seq: Seq


class StageTwoMessage(BaseModel):
    """How a record's stage two ended: the ticket's view, or why no ticket was issued."""

    type: str = Field(
        description="'stage2' for a completed ticket, else the ticket's status (failed, "
        "canceled, expired, lost, rejected) or, with no ticket, rejected or unavailable."
    )
    seq: Seq
    ticket: str | None
    stage_two: TicketView | StageTwoStatus


class ErrorMessage(ErrorBody):
    type: Literal["error"] = "error"
    seq: Seq | None = Field(None, description="The record's seq, where it could be read.")
