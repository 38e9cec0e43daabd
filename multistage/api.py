"""The JSON shapes of the HTTP API (v1), shared by the deployments that build them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

TicketStatus = Literal["pending", "completed", "failed"]


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

    @classmethod
    def from_probabilities(
        cls,
        probabilities: np.ndarray,
        classes: list[str],
        model: ModelInfo,
        latency_ms: float,
        batch_size: int | None = None,
    ) -> Prediction:
        return cls(
            label=classes[int(np.argmax(probabilities))],
            scores={c: round(float(p), 6) for c, p in zip(classes, probabilities, strict=True)},
            model=model,
            latency_ms=round(latency_ms, 3),
            batch_size=batch_size,
        )


class StageTwoStatus(BaseModel):
    status: TicketStatus | Literal["unavailable"] = Field(
        description="'unavailable' when stage two could not take the request: no ticket exists."
    )
    url: str | None = Field(None, description="Where to fetch stage two: GET it, with ?wait=S.")
    error: str | None = None


class PredictResponse(BaseModel):
    ticket: str | None
    stage_one: Prediction
    stage_two: StageTwoStatus


class TicketView(BaseModel):
    ticket: str
    status: TicketStatus
    submitted_at: datetime
    finished_at: datetime | None = None
    result: Prediction | None = None
    error: str | None = None


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="A stable error code, e.g. 'invalid_record'.")
    message: str
    errors: list[FieldProblem] = []


class BatchItem(BaseModel):
    """One record's outcome in a batch: its predictions, or its own error."""

    index: int = Field(description="Position of the record in the request.")
    ticket: str | None = None
    stage_one: Prediction | None = None
    stage_two: StageTwoStatus | None = None
    error: ErrorBody | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]


class ModelsResponse(BaseModel):
    stage_one: ModelInfo
    stage_two: ModelInfo
    classes: list[str]
    input_schema: dict = Field(description="JSON Schema of the POST /v1/predict body.")
    example_request: dict
