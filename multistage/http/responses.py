"""The ingress's JSON responses, written straight from their models."""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel

from multistage_client.models import GONE, UNFINISHED, TicketView


def json_response(body: BaseModel, status_code: int = 200, headers: dict | None = None) -> Response:
    """A JSON response straight from the model: FastAPI would validate it again."""
    return Response(
        body.model_dump_json(), status_code, headers=headers, media_type="application/json"
    )


def ticket_response(view: TicketView) -> Response:
    """200 once the ticket has ended, 202 (Retry-After) before, 410 when its result is gone."""
    if view.status in UNFINISHED:
        return json_response(view, 202, headers={"Retry-After": "1"})
    return json_response(view, 410 if view.status in GONE else 200)
