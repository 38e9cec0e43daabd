"""The HTTP ingress: answers stage one at once and hands out tickets for stage two.

Stateless by design: tickets live in the TicketStore, so any replica of this
deployment can answer for any ticket, and losing one loses nothing.

No ``from __future__ import annotations`` here: FastAPI reads the route methods'
annotations at runtime.
"""

import asyncio
import time

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from multistage.api import (
    ErrorBody,
    ModelInfo,
    ModelsResponse,
    PredictResponse,
    StageTwoStatus,
    TicketView,
)
from multistage.http_errors import BodyTooLarge, error_response, install_error_handlers
from multistage.records import RecordParser
from multistage.schema import RecordSchema

API_VERSION = "v1"
# Ticket ids are 22 characters; anything much longer was never issued.
_MAX_TICKET_LENGTH = 64


class HttpLimits(BaseModel):
    max_body_bytes: int = Field(1 << 20, gt=0, description="Larger bodies get 413.")
    max_wait_s: float = Field(30.0, ge=0, description="Cap on a long-poll's ?wait=.")
    submit_timeout_s: float = Field(
        2.0, gt=0, description="How long stage one waits for the ticket store to take a ticket."
    )


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
@serve.ingress()
class Ingress:
    def __init__(
        self,
        tabular: DeploymentHandle,
        tickets: DeploymentHandle,
        schema: RecordSchema,
        models: dict[str, ModelInfo],
        limits: HttpLimits,
    ) -> None:
        self._tabular = tabular
        self._tickets = tickets
        self._models = models
        self._limits = limits
        self.schema = schema
        self.parser = RecordParser(schema)
        context = serve.get_replica_context()
        self._app_name = context.app_name
        self.replica_id = context.replica_id.unique_id

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built per replica, after __init__: the request model comes from the schema.
        return _http_app(self)

    async def predict(self, request: Request) -> PredictResponse:
        started = time.perf_counter()
        body = await _read_body(request, self._limits.max_body_bytes)
        record = self.parser.parse(body)
        # Both calls leave now; only stage one and the store's receipt are awaited.
        stage_one = self._tabular.predict.remote(record.features)
        submission = self._tickets.submit.remote(record)
        try:
            prediction = await stage_one
        except BaseException:
            submission.cancel()
            raise
        prediction.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        ticket, stage_two = await self._stage_two_status(submission, request)
        return PredictResponse(ticket=ticket, stage_one=prediction, stage_two=stage_two)

    async def get_prediction(
        self,
        ticket: str,
        wait: float = Query(
            0.0, ge=0, description="Seconds to wait for stage two (long-poll); capped."
        ),
    ) -> TicketView | JSONResponse:
        view = None
        if len(ticket) <= _MAX_TICKET_LENGTH:
            wait_s = min(wait, self._limits.max_wait_s)
            view = await self._tickets.fetch.remote(ticket, wait_s)
        if view is None:
            return error_response(404, "unknown_ticket", f"no ticket {ticket!r}")
        if view.status == "pending":
            return JSONResponse(
                view.model_dump(mode="json"), status_code=202, headers={"Retry-After": "1"}
            )
        return view

    async def healthz(self) -> JSONResponse:
        # serve.status() blocks on the controller: keep it off the event loop.
        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(self._app_name)
        if app is None:
            return JSONResponse({"status": "unavailable", "deployments": {}}, status_code=503)
        deployments = {name: d.status.value for name, d in app.deployments.items()}
        ready = app.status.value == "RUNNING"
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "deployments": deployments},
            status_code=200 if ready else 503,
        )

    async def models(self) -> ModelsResponse:
        return ModelsResponse(
            stage_one=self._models["stage_one"],
            stage_two=self._models["stage_two"],
            classes=self.schema.classes,
            input_schema=self.parser.model.model_json_schema(),
            example_request=self.schema.example,
        )

    async def _stage_two_status(
        self, submission: DeploymentResponse, request: Request
    ) -> tuple[str | None, StageTwoStatus]:
        """The store's receipt for the ticket; stage one is answered even without one."""
        try:
            ticket = await asyncio.wait_for(submission, timeout=self._limits.submit_timeout_s)
        except Exception as error:  # noqa: BLE001 - stage two's trouble never fails stage one
            submission.cancel()
            reason = f"stage two is unavailable: {type(error).__name__}"
            return None, StageTwoStatus(status="unavailable", error=reason)
        root = request.scope.get("root_path", "")
        url = f"{root}/{API_VERSION}/predictions/{ticket}"
        return ticket, StageTwoStatus(status="pending", url=url)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _http_app(ingress: Ingress) -> FastAPI:
    app = FastAPI(
        title="Multistage prediction service",
        version=API_VERSION,
        description="Stage one (XGBoost) answers at once; stage two (PyTorch) by ticket.",
    )
    install_error_handlers(app)
    errors = {status: {"model": ErrorBody} for status in (400, 404, 413, 422)}
    request_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": ingress.parser.model.model_json_schema(),
                "example": ingress.schema.example,
            }
        },
    }
    app.add_api_route(
        f"/{API_VERSION}/predict",
        ingress.predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=errors,
        openapi_extra={"requestBody": request_body},
        summary="Stage one now, plus a ticket for stage two",
    )
    app.add_api_route(
        f"/{API_VERSION}/predictions/{{ticket}}",
        ingress.get_prediction,
        methods=["GET"],
        response_model=TicketView,
        responses={202: {"model": TicketView, "description": "Still pending"}, **errors},
        summary="Stage two for a ticket (long-poll with ?wait=S)",
    )
    app.add_api_route(f"/{API_VERSION}/models", ingress.models, methods=["GET"])
    app.add_api_route("/healthz", ingress.healthz, methods=["GET"], summary="Readiness")

    app.add_middleware(ServedBy, replica_id=ingress.replica_id)
    return app


class ServedBy:
    """Names the ingress replica that answered (X-Ingress-Replica), to trace requests."""

    def __init__(self, app, replica_id: str) -> None:
        self._app = app
        self._header = (b"x-ingress-replica", replica_id.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self._app(scope, receive, send)

        async def send_with_header(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self._header]
            await send(message)

        return await self._app(scope, receive, send_with_header)
