"""What the command line prints: aligned lines for a person, or JSON for a script."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from pydantic import BaseModel

from multistage_client.models import (
    ErrorBody,
    ModelsResponse,
    Prediction,
    PredictResponse,
    TicketView,
)


class Printer:
    def __init__(self, as_json: bool, out: TextIO = sys.stdout) -> None:
        self.as_json = as_json
        self._out = out

    def stage_one(self, response: PredictResponse) -> None:
        if self.as_json:
            return self._json(response)
        self._line("stage one", _prediction(response.stage_one))
        if response.ticket is not None:
            self._line("ticket", response.ticket)
        else:
            status = response.stage_two.status
            self._line("stage two", f"{status}{_why(response.stage_two.error, status)}")

    def ticket(self, view: TicketView) -> None:
        if self.as_json:
            return self._json(view)
        if view.result is not None:
            return self._line("stage two", _prediction(view.result))
        self._line("stage two", f"{view.status}{_why(view.error, view.status)}")

    def models(self, models: ModelsResponse) -> None:
        if self.as_json:
            return self._json(models)
        self._line("stage one", f"{models.stage_one.name} {models.stage_one.version}")
        self._line("stage two", f"{models.stage_two.name} {models.stage_two.version}")
        self._line("classes", ", ".join(models.classes))
        schema = models.input_schema
        required = set(schema.get("required", []))
        for name, field in schema.get("properties", {}).items():
            optional = "" if name in required else "  (optional)"
            self._line(name, _field_type(field) + optional)

    def raw(self, value: object) -> None:
        """A value as one line of JSON, whatever the mode (a record, a stream message)."""
        if isinstance(value, BaseModel):
            return self._json(value)
        print(json.dumps(value), file=self._out, flush=True)

    def problem(self, line: str) -> None:
        """Why the command did not succeed, in one line on standard error."""
        print(f"multistage: {line}", file=sys.stderr, flush=True)

    def _json(self, model: BaseModel) -> None:
        print(model.model_dump_json(), file=self._out, flush=True)

    def _line(self, label: str, text: str) -> None:
        print(f"{label:<14} {text}", file=self._out, flush=True)


def _why(error: ErrorBody | None, status: str) -> str:
    """The error's code, where it says more than the status, and its message."""
    if error is None:
        return ""
    code = "" if error.error == status else f"{error.error}: "
    return f": {code}{error.message}"


def _prediction(prediction: Prediction) -> str:
    score = prediction.scores.get(prediction.label)
    parts = [
        prediction.label,
        f"p={score:.2f}" if score is not None else "",
        f"{prediction.model.name} {prediction.model.version}",
        f"{prediction.latency_ms:.1f} ms",
    ]
    if prediction.batch_size:
        parts.append(f"batch of {prediction.batch_size}")
    return "   ".join(p for p in parts if p)


def _field_type(field: dict) -> str:
    """A JSON Schema property in a few words: its type, its choices or its bounds."""
    options = field.get("anyOf", [field])
    kinds = []
    for option in options:
        if "enum" in option:
            kinds.append("|".join(map(str, option["enum"])))
        elif option.get("type") != "null":
            kinds.append(option.get("type", "any"))
    text = " or ".join(kinds)
    bounds = [f"{k} {field[k]}" for k in ("minimum", "maximum") if k in field]
    description = field.get("description")
    return ", ".join([text, *bounds] + ([description] if description else []))
