"""The ingress's HTTP surface: its routes, their OpenAPI documentation, response headers.

The request handling itself is an ``Api``'s: the Ingress deployment
(``deployments/ingress.py``) is one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from multistage.http.auth import PROTECTED_PREFIX, ApiKeyAuth
from multistage.http.errors import install_error_handlers
from multistage.http.tenants import Tenants
from multistage_client import paths
from multistage_client.models import (
    BatchResponse,
    ErrorBody,
    ModelsResponse,
    PredictResponse,
    TicketView,
)


class Api(Protocol):
    """The route handlers (FastAPI reads their parameters) and what the docs need."""

    predict: Callable
    predict_stream: Callable
    predict_batch: Callable
    get_prediction: Callable
    cancel_prediction: Callable
    prediction_events: Callable
    models: Callable
    healthz: Callable
    stream_session: Callable  # a WebSocket route (not in the OpenAPI document)
    request_schema: dict  # JSON Schema of one record
    example_request: dict
    max_batch_records: int
    tenants: Tenants | None  # None: the API is open
    replica_id: str


_EVENT_STREAM_DOC = {
    "description": (
        "text/event-stream: `stage1` (a PredictResponse; the stream for an existing ticket "
        "skips it), heartbeat comments while stage two is unfinished, then one terminal event: "
        "`stage2` (a completed TicketView), or a TicketView named by how the ticket ended "
        "(`failed`, `canceled`, `expired`, `lost`), or, when no ticket was issued, a "
        "StageTwoStatus named `rejected` or `unavailable`; then the stream closes."
    ),
    "content": {
        "text/event-stream": {
            "example": 'event: stage1\ndata: {"ticket": "...", "stage_one": {...}}\n\n'
            ": heartbeat\n\n"
            'event: stage2\ndata: {"ticket": "...", "status": "completed", "result": {...}}\n\n'
        }
    },
}


_HEALTH_DOC = {
    "description": "Every deployment is running",
    "content": {
        "application/json": {
            "example": {
                "status": "ok",
                "deployments": {
                    "Ingress": "HEALTHY",
                    "TicketStore": "HEALTHY",
                    "HeavyModel": "HEALTHY",
                },
            }
        }
    },
}


def build_http_app(api: Api) -> FastAPI:
    app = FastAPI(
        title="Multistage prediction service",
        version=paths.API_VERSION,
        description="Stage one (XGBoost) answers at once; stage two (PyTorch) by ticket.",
    )
    install_error_handlers(app)
    _add_predict_routes(app, api)
    _add_ticket_routes(app, api)
    _add_service_routes(app, api)
    # Its protocol is in multistage_client/protocol.py and docs/streams.md; the session checks
    # the API key itself (a browser's WebSocket cannot send headers: a first message can).
    app.add_api_websocket_route(paths.STREAMS, api.stream_session)

    if api.tenants is not None:
        app.add_middleware(ApiKeyAuth, tenants=api.tenants, routes=app.router.routes)
        _document_api_keys(app)
    # Added last, so it runs first: refusals name their replica too.
    app.add_middleware(ServedBy, replica_id=api.replica_id)
    return app


_PREDICT_ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 404, 413, 415, 422, 503)}
_TICKET_ERRORS = {status: {"model": ErrorBody} for status in (401, 404, 422, 503)}
_STAGE_TWO_HEADER = {
    paths.STAGE_TWO_HEADER: {
        "description": "stage_two.status: pending, rejected or unavailable",
        "schema": {"type": "string"},
    }
}


def _add_predict_routes(app: FastAPI, api: Api) -> None:
    """The routes that take records: stage one now, stage two by ticket or on the stream."""
    request_body = {"requestBody": _json_body(api.request_schema, api.example_request)}
    app.add_api_route(
        paths.PREDICT,
        api.predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses={200: {"headers": _STAGE_TWO_HEADER}, **_PREDICT_ERRORS},
        openapi_extra=request_body,
        summary="Stage one now, plus a ticket for stage two",
    )
    app.add_api_route(
        paths.PREDICT_STREAM,
        api.predict_stream,
        response_model=None,
        methods=["POST"],
        response_class=StreamingResponse,
        responses={200: _EVENT_STREAM_DOC, **_PREDICT_ERRORS},
        openapi_extra=request_body,
        summary="Stage one and stage two as Server-Sent Events on one response",
    )
    app.add_api_route(
        paths.PREDICT_BATCH,
        api.predict_batch,
        methods=["POST"],
        response_model=BatchResponse,
        responses=_PREDICT_ERRORS,
        openapi_extra={"requestBody": _batch_body(api)},
        summary="Many records: stage one in one vectorised call, one ticket each",
    )


def _json_body(schema: dict, example: dict) -> dict:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _batch_body(api: Api) -> dict:
    records = {
        "type": "array",
        "items": api.request_schema,
        "minItems": 1,
        "maxItems": api.max_batch_records,
    }
    schema = {"type": "object", "required": ["records"], "properties": {"records": records}}
    return _json_body(schema, {"records": [api.example_request]})


def _add_ticket_routes(app: FastAPI, api: Api) -> None:
    """The routes that read or cancel an issued ticket."""
    app.add_api_route(
        paths.PREDICTION_EVENTS,
        api.prediction_events,
        response_model=None,
        methods=["GET"],
        response_class=StreamingResponse,
        responses={200: _EVENT_STREAM_DOC, **_TICKET_ERRORS},
        summary="Stage two for an existing ticket as Server-Sent Events",
    )
    app.add_api_route(
        paths.PREDICTION,
        api.get_prediction,
        methods=["GET"],
        response_model=TicketView,
        responses={
            200: {
                "description": "The ticket has ended: completed, failed, canceled, rejected or lost"
            },
            202: {"model": TicketView, "description": "Pending or running (with Retry-After)"},
            410: {"model": TicketView, "description": "Expired: deadline passed, or TTL"},
            **_TICKET_ERRORS,
        },
        summary="Stage two for a ticket (long-poll with ?wait=S)",
    )
    app.add_api_route(
        paths.PREDICTION,
        api.cancel_prediction,
        methods=["DELETE"],
        response_model=TicketView,
        responses={
            200: {"description": "Canceled: unstarted work never runs"},
            409: {"model": ErrorBody, "description": "The ticket had already ended otherwise"},
            410: {"model": TicketView, "description": "Expired"},
            **_TICKET_ERRORS,
        },
        summary="Cancel a ticket's stage two",
    )


def _add_service_routes(app: FastAPI, api: Api) -> None:
    """What the service says of itself: its models, and whether it is ready."""
    app.add_api_route(
        paths.MODELS,
        api.models,
        methods=["GET"],
        response_model=ModelsResponse,
        responses={401: {"model": ErrorBody}},
        summary="Model names and versions, input schema, a valid example request",
    )
    app.add_api_route(
        paths.HEALTHZ,
        api.healthz,
        methods=["GET"],
        response_model=None,
        responses={200: _HEALTH_DOC, 503: {"description": "Not every deployment is running"}},
        summary="Readiness: 200 only when every deployment runs",
    )


def _document_api_keys(app: FastAPI) -> None:
    """The OpenAPI document names the two ways to send a key, on every ``/v1`` operation."""
    generate = app.openapi

    def openapi() -> dict:
        document = generate()  # FastAPI builds it once, then returns the same dict
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        for path, operations in document["paths"].items():
            if path.startswith(PROTECTED_PREFIX):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        return document

    app.openapi = openapi


class ServedBy:
    """Names the ingress replica that answered (``INGRESS_REPLICA_HEADER``), to trace requests."""

    def __init__(self, app, replica_id: str) -> None:
        self._app = app
        self._header = (paths.INGRESS_REPLICA_HEADER.lower().encode(), replica_id.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self._app(scope, receive, send)

        async def send_with_header(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self._header]
            await send(message)

        return await self._app(scope, receive, send_with_header)
