"""One ticket as the journal holds it. Entries are JSON; a record travels as an ``.npz``
of its arrays, read back with ``allow_pickle=False``: nothing in the journal is ever
unpickled."""

from __future__ import annotations

import base64
import io

import numpy as np
from pydantic import BaseModel, Field

from multistage.models.records import Record
from multistage.tickets.ids import DEFAULT_TENANT
from multistage_client.models import ErrorBody, Prediction, TicketStatus


class JournalEntry(BaseModel):
    """One ticket as the journal holds it."""

    ticket: str
    owner: str = Field("", description="The store replica that runs it.")
    status: TicketStatus
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    error: ErrorBody | None = None
    deadline: float | None = None
    stage_one_label: str | None = None
    request_id: str = ""
    tenant: str = DEFAULT_TENANT
    record: str | None = Field(
        None, description="The record (encode_record): written with the ticket's first entry."
    )
    result: Prediction | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


def encode_record(record: Record) -> str:
    arrays = {"features": record.features}
    if record.image is not None:
        arrays["image"] = record.image
    arrays |= {f"text.{name}": ids for name, ids in record.texts.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_record(encoded: str) -> Record:
    with np.load(io.BytesIO(base64.b64decode(encoded)), allow_pickle=False) as arrays:
        texts = {key[5:]: arrays[key] for key in arrays.files if key.startswith("text.")}
        image = arrays["image"] if "image" in arrays.files else None
        return Record(features=arrays["features"], image=image, texts=texts)
