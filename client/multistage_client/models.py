"""The JSON shapes of the HTTP API (v1): what the client reads, and the server builds."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from multistage_client.paths import ticket_path

TicketStatus = Literal[
    "pending", "running", "completed", "failed", "canceled", "rejected", "expired", "lost"
]
UNFINISHED: tuple[TicketStatus, ...] = ("pending", "running")
# Answered with 410 Gone: the result will never be available.
GONE: tuple[TicketStatus, ...] = ("expired",)

_TICKET = "ItY9H7DisHQGRD8op716wAAAAaIIGOf_kAeEfmLvC31ufIu54pKoOBa8ico"
_STAGE_ONE = {
    "label": "defect",
    "scores": {"ok": 0.205034, "defect": 0.794966},
    "model": {"name": "defect-xgboost", "version": "af683a0dcfcf"},
    "latency_ms": 13.2,
    "batch_size": None,
}
_STAGE_TWO = {"status": "pending", "url": ticket_path(_TICKET), "error": None}
_PREDICT_EXAMPLE = {"ticket": _TICKET, "stage_one": _STAGE_ONE, "stage_two": _STAGE_TWO}
_TICKET_EXAMPLE = {
    "ticket": _TICKET,
    "status": "completed",
    "submitted_at": "2026-11-23T11:49:39.711000Z",
    "started_at": "2026-11-23T11:49:39.721305Z",
    "finished_at": "2026-11-23T11:49:39.967996Z",
    "attempts": 1,
    "result": {
        "label": "defect",
        "scores": {"ok": 0.000251, "defect": 0.999749},
        "model": {"name": "defect-cnn", "version": "015153eb85d9"},
        "latency_ms": 256.1,
        "batch_size": 4,
        "modalities": ["tabular", "image", "note"],
    },
    "error": None,
}
_ERROR_EXAMPLE = {
    "error": "invalid_record",
    "message": "shift: Input should be 'day', 'night' or 'weekend'",
    "errors": [{"field": "shift", "message": "Input should be 'day', 'night' or 'weekend'"}],
}


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="Content hash of the model file.")


class Prediction(BaseModel):
    label: str
    scores: dict[str, float] = Field(description="Probability of each class.")
    model: ModelInfo
    latency_ms: float = Field(
        description="Server time from accepting the request to this answer, queueing included."
    )
    batch_size: int | None = Field(
        None, description="Stage two only: how many requests shared this model call."
    )
    modalities: list[str] | None = Field(
        None,
        description="Stage two only: what it saw: 'tabular', then the image and text fields.",
    )


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_ERROR_EXAMPLE]})

    error: str = Field(description="A stable error code, e.g. 'invalid_record'.")
    message: str
    errors: list[FieldProblem] = []


class StageTwoStatus(BaseModel):
    status: Literal["pending", "rejected", "unavailable"] = Field(
        description=(
            "'pending': a ticket was issued. 'rejected': stage two is full (admission "
            "control); 'unavailable': this ingress replica holds too much work the ticket "
            "store has not taken. Neither of those issues a ticket."
        )
    )
    url: str | None = Field(None, description="Where to fetch stage two: GET it, with ?wait=S.")
    error: ErrorBody | None = Field(
        None,
        description="Why no ticket was issued: stage_two_full, stage_two_unavailable or "
        "session_full.",
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PREDICT_EXAMPLE]})

    ticket: str | None
    stage_one: Prediction
    stage_two: StageTwoStatus


class TicketView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_TICKET_EXAMPLE]})

    ticket: str
    status: TicketStatus = Field(
        description=(
            "pending (on its way to, or waiting for, a heavy replica), running (a replica has "
            "it), then one of: completed, failed, canceled, rejected (stage two was full when "
            "the ticket reached it), expired (its deadline passed before it started, or its "
            "result was released after the TTL: 410), lost (the ticket store restarted, or "
            "the ticket never reached it)."
        )
    )
    submitted_at: datetime
    started_at: datetime | None = Field(None, description="When a heavy replica took it.")
    finished_at: datetime | None = None
    attempts: int = Field(0, description="Calls made to stage two (a replica's death retries).")
    result: Prediction | None = None
    error: ErrorBody | None = Field(
        None,
        description=(
            "Why it did not complete, by code: deadline_passed, result_expired (expired); "
            "model_failed, non_finite_output, timed_out, replica_lost, stage_two_error "
            "(failed); canceled; stage_two_full, tenant_full (rejected); ticket_lost (lost)."
        ),
    )


class BatchItem(BaseModel):
    """One record's outcome in a batch: its predictions, or its own error."""

    index: int = Field(description="Position of the record in the request.")
    ticket: str | None = None
    stage_one: Prediction | None = None
    stage_two: StageTwoStatus | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {"index": 0, **_PREDICT_EXAMPLE, "error": None},
                        {
                            "index": 1,
                            "ticket": None,
                            "stage_one": None,
                            "stage_two": None,
                            "error": _ERROR_EXAMPLE,
                        },
                    ]
                }
            ]
        }
    )

    results: list[BatchItem]


class ModelsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stage_one": _STAGE_ONE["model"],
                    "stage_two": _TICKET_EXAMPLE["result"]["model"],
                    "classes": ["ok", "defect"],
                    "input_schema": {"type": "object", "properties": {"...": {}}},
                    "example_request": {"temperature_c": 78.2, "...": "..."},
                }
            ]
        }
    )

    stage_one: ModelInfo
    stage_two: ModelInfo
    classes: list[str]
    input_schema: dict = Field(description="JSON Schema of the POST /v1/predict body.")
    example_request: dict
