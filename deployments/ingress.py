"""The HTTP ingress: answers stage one at once and hands out tickets for stage two.

Stateless by design: tickets live in the TicketStore, so any replica of this
deployment can answer for any ticket, and losing one loses nothing.

No ``from __future__ import annotations`` here: FastAPI reads the route methods'
annotations at runtime.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from deployments.ticket_store import Receipt, lost_view
from multistage.api import (
    GONE,
    UNFINISHED,
    BatchItem,
    BatchResponse,
    ModelInfo,
    ModelsResponse,
    Prediction,
    PredictResponse,
    StageTwoStatus,
    TicketView,
)
from multistage.auth import AuthArgs, load_api_key
from multistage.coalesce import Backlogged, CallCoalescer
from multistage.http_app import API_VERSION, build_http_app
from multistage.http_errors import (
    BodyTooLarge,
    Overloaded,
    TicketStoreUnavailable,
    UnknownTicket,
    error_response,
    invalid_record_body,
)
from multistage.metrics import IngressMetrics
from multistage.records import FieldError, InvalidRecord, Record, RecordParser, invalid_record
from multistage.schema import RecordSchema
from multistage.sse import HEARTBEAT, event_stream, sse_event
from multistage.ticket_ids import TicketIds

STAGE_TWO_HEADER = "X-Stage-Two-Status"
# Stage one's labels wait this long to go to the store together, at most this many.
LABELS_EVERY_S = 1.0
MAX_UNSENT_LABELS = 10_000
# A call's answer, direct or through a CallCoalescer.
Pending = asyncio.Future | DeploymentResponse
logger = logging.getLogger("ray.serve")


class HttpLimits(BaseModel):
    max_body_bytes: int = Field(1 << 20, gt=0, description="Larger bodies get 413.")
    max_batch_records: int = Field(64, gt=0, description="Most records in one batch request.")
    max_wait_s: float = Field(30.0, ge=0, description="Cap on a long-poll's ?wait=.")
    heartbeat_s: float = Field(10.0, gt=0, description="Event-stream heartbeat interval.")
    submit_timeout_s: float = Field(
        2.0, gt=0, description="How long stage one waits for the ticket store to take a ticket."
    )
    store_timeout_s: float = Field(
        2.0,
        gt=0,
        description="How long a read may wait for the ticket store beyond its own wait (503).",
    )
    max_deadline_s: float = Field(3600.0, gt=0, description="Cap on a request's ?deadline_s=.")


DEADLINE_QUERY = Query(
    None,
    gt=0,
    description=(
        "Seconds from now by which stage two must start; later, it is skipped and the "
        "ticket reads 'expired'. Capped by http.max_deadline_s."
    ),
)


class Coalescing(BaseModel):
    """How the ingress merges concurrent requests' calls to stage one and the ticket store."""

    max_in_flight: int = Field(
        1, gt=0, description="Calls out at once per deployment; past it, requests share calls."
    )
    max_items: int = Field(64, gt=0, description="Most requests one call carries.")
    max_waiting: int = Field(
        256, gt=0, description="Requests waiting for a call per replica; past it, 503."
    )


class BatchRequest(BaseModel):
    # Items stay raw JSON here: each is validated on its own, so one bad record fails alone.
    records: list[object] = Field(min_length=1)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
@serve.ingress()
class Ingress:
    async def __init__(
        self,
        tabular: DeploymentHandle,
        tickets: DeploymentHandle,
        schema: RecordSchema,
        models: dict[str, ModelInfo],
        limits: HttpLimits,
        auth: AuthArgs,
        ticket_secret: bytes,
        coalescing: Coalescing,
    ) -> None:
        self._tabular = tabular
        self._tickets = tickets
        bounds = coalescing.max_in_flight, coalescing.max_items, coalescing.max_waiting
        self._stage_one_calls = CallCoalescer(self._predict_rows, *bounds)
        self._submissions = CallCoalescer(self._submit_records, *bounds)
        self._metrics = IngressMetrics()
        self._unsent_labels: list[tuple[str, str]] = []
        # Started with the replica, outside any request: no client's disconnect cancels it.
        self._label_sender = asyncio.create_task(self._send_stage_one_labels_forever())
        self._models = models
        self._ids = TicketIds(ticket_secret)
        self.limits = limits
        # Read here, in the replica's own environment, so the key never travels in config.
        self.api_key = load_api_key(auth)
        logger.info("API key authentication is %s", "on" if self.api_key else "off")
        self.schema = schema
        self.parser = RecordParser(schema)
        context = serve.get_replica_context()
        self._app_name = context.app_name
        self.replica_id = context.replica_id.unique_id

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Built per replica, after __init__: the request model comes from the schema.
        return build_http_app(self)

    async def predict(
        self, request: Request, response: Response, deadline_s: float | None = DEADLINE_QUERY
    ) -> PredictResponse:
        answer = await self._answer(await self._record(request), request, deadline_s)
        response.headers[STAGE_TWO_HEADER] = answer.stage_two.status
        return answer

    async def predict_stream(
        self, request: Request, deadline_s: float | None = DEADLINE_QUERY
    ) -> StreamingResponse:
        # Bad input is answered as a plain 4xx before the stream starts.
        answer = await self._answer(await self._record(request), request, deadline_s)
        stream = event_stream(self._stage_one_then_two(answer))
        stream.headers[STAGE_TWO_HEADER] = answer.stage_two.status
        return stream

    async def predict_batch(
        self, request: Request, deadline_s: float | None = DEADLINE_QUERY
    ) -> BatchResponse:
        started = time.perf_counter()
        deadline = self._deadline(deadline_s)
        body = await _read_body(request, self.limits.max_body_bytes)
        items = self._parse_batch(body)
        good = {i: item for i, item in enumerate(items) if isinstance(item, Record)}
        results = [
            BatchItem(index=i, error=invalid_record_body(item))
            for i, item in enumerate(items)
            if i not in good
        ]
        if good:
            records = list(good.values())
            features = np.stack([r.features for r in records])
            stage_one = self._tabular.predict_many.remote(features)
            submission = self._tickets.submit_many.remote(records, [deadline] * len(records))
            predictions = await self._stage_one(stage_one, submission)
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            self._metrics.stage_one_answered(latency_ms)
            receipts = await self._receipt(submission) or [None] * len(records)
            for index, prediction, receipt in zip(good, predictions, receipts, strict=True):
                prediction.latency_ms = latency_ms
                self._issued(receipt, prediction)
                results.append(
                    BatchItem(
                        index=index,
                        ticket=receipt and receipt.ticket,
                        stage_one=prediction,
                        stage_two=self._stage_two_status(receipt, request),
                    )
                )
        return BatchResponse(results=sorted(results, key=lambda item: item.index))

    async def get_prediction(
        self,
        ticket: str,
        wait: float = Query(
            0.0, ge=0, description="Seconds to wait for stage two (long-poll); capped."
        ),
    ) -> JSONResponse:
        return _ticket_response(await self._fetch(ticket, min(wait, self.limits.max_wait_s)))

    async def cancel_prediction(self, ticket: str) -> JSONResponse:
        view = await self._ask_store(ticket, lambda: self._tickets.cancel.remote(ticket))
        if view.status in ("canceled", *GONE):
            return _ticket_response(view)
        return error_response(
            409, "already_finished", f"ticket {ticket!r} already ended: {view.status}"
        )

    async def prediction_events(self, ticket: str) -> StreamingResponse:
        await self._fetch(ticket, 0)  # an unknown ticket is a plain 404, not a stream
        return event_stream(self._stage_two_events(ticket))

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
            input_schema=self.parser.json_schema,
            example_request=self.schema.example,
        )

    async def _record(self, request: Request) -> Record:
        return self.parser.parse(await _read_body(request, self.limits.max_body_bytes))

    async def _answer(
        self, record: Record, request: Request, deadline_s: float | None
    ) -> PredictResponse:
        started = time.perf_counter()
        # Both calls leave now (or join the next call out); only stage one and the store's
        # receipt are awaited.
        try:
            stage_one = self._stage_one_calls.submit(record.features)
        except Backlogged:
            raise self._overloaded() from None
        submission = self._submit(record, self._deadline(deadline_s))
        prediction = await self._stage_one(stage_one, submission)
        prediction.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self._metrics.stage_one_answered(prediction.latency_ms)
        receipt = await self._receipt(submission)
        self._issued(receipt, prediction)
        return PredictResponse(
            ticket=receipt and receipt.ticket,
            stage_one=prediction,
            stage_two=self._stage_two_status(receipt, request),
        )

    def _deadline(self, deadline_s: float | None) -> float | None:
        if deadline_s is None:
            return None
        return time.time() + min(deadline_s, self.limits.max_deadline_s)

    def _submit(self, record: Record, deadline: float | None) -> asyncio.Future:
        try:
            return self._submissions.submit((record, deadline))
        except Backlogged:
            # The store is swamped: no receipt (stage two 'unavailable'); stage one answers.
            no_receipt = asyncio.get_running_loop().create_future()
            no_receipt.set_result(None)
            return no_receipt

    async def _predict_rows(self, rows: list[np.ndarray]) -> list[Prediction]:
        return await self._tabular.predict_many.remote(np.stack(rows))

    async def _submit_records(self, items: list[tuple[Record, float | None]]) -> list[Receipt]:
        records, deadlines = zip(*items, strict=True)
        response = self._tickets.submit_many.remote(list(records), list(deadlines))
        try:
            # Bounded, so a store that hangs cannot hold the shared call slot forever.
            return await asyncio.wait_for(response, timeout=self.limits.submit_timeout_s)
        except asyncio.TimeoutError:
            response.cancel()
            raise

    async def _stage_one(self, stage_one: Pending, submission: Pending):
        try:
            return await stage_one
        except BackPressureError:
            submission.cancel()
            raise self._overloaded() from None
        except BaseException:
            submission.cancel()
            raise

    async def _receipt(self, submission: Pending):
        """The store's ticket id(s); None when stage two can't take the work in time."""
        try:
            return await asyncio.wait_for(submission, timeout=self.limits.submit_timeout_s)
        except Exception:  # noqa: BLE001 - stage two's trouble never fails stage one
            logger.warning("ticket store did not take the request", exc_info=True)
            submission.cancel()
            return None

    def _overloaded(self) -> Overloaded:
        self._metrics.rejected("stage_one_overloaded")
        return Overloaded()

    def _issued(self, receipt: Receipt | None, prediction: Prediction) -> None:
        """Account for a request's ticket; the store learns stage one's label, to count how
        often stage two revises it."""
        if receipt is None:
            self._metrics.rejected("stage_two_unavailable")
        elif receipt.ticket is not None:
            logger.info(
                "stage one answered",
                extra={"ticket": receipt.ticket, "stage_one_label": prediction.label},
            )
            if len(self._unsent_labels) < MAX_UNSENT_LABELS:  # else a metric sample is lost
                self._unsent_labels.append((receipt.ticket, prediction.label))

    async def _send_stage_one_labels_forever(self) -> None:
        """Stage one's labels go to the store once a second, in one call: the revision
        metric lags by a second, where a call per request would cost each request CPU."""
        while True:
            await asyncio.sleep(LABELS_EVERY_S)
            if not self._unsent_labels:
                continue
            tickets, labels = zip(*self._unsent_labels, strict=True)
            self._unsent_labels = []
            try:
                await self._tickets.note_stage_one.remote(list(tickets), list(labels))
            except Exception:  # noqa: BLE001 - a lost metric sample must not stop the sender
                logger.warning("the ticket store did not take stage one's labels", exc_info=True)

    def _stage_two_status(self, receipt: Receipt | None, request: Request) -> StageTwoStatus:
        if receipt is None:
            return StageTwoStatus(
                status="unavailable", error="stage two could not take this request in time"
            )
        if receipt.ticket is None:
            return StageTwoStatus(status="rejected", error=receipt.rejection)
        root = request.scope.get("root_path", "")
        url = f"{root}/{API_VERSION}/predictions/{receipt.ticket}"
        return StageTwoStatus(status="pending", url=url)

    async def _fetch(self, ticket: str, wait_s: float) -> TicketView:
        return await self._ask_store(
            ticket, lambda: self._tickets.fetch.remote(ticket, wait_s), wait_s
        )

    async def _ask_store(
        self, ticket: str, call: Callable[[], DeploymentResponse], wait_s: float = 0.0
    ) -> TicketView:
        """The store's view of a ticket; never waits past ``wait_s`` plus the store timeout.

        Ids are checked here first: made-up ones never reach the store.
        """
        issued_at = self._ids.issued_at(ticket)
        if issued_at is None:
            raise UnknownTicket(ticket)
        response = call()
        try:
            view = await asyncio.wait_for(response, timeout=wait_s + self.limits.store_timeout_s)
        except RayActorError:
            # The store died under this call, and with it every ticket it held.
            return lost_view(ticket, issued_at, "the ticket store stopped")
        except asyncio.TimeoutError:
            response.cancel()
            raise TicketStoreUnavailable() from None
        if view is None:
            raise UnknownTicket(ticket)
        return view

    async def _stage_one_then_two(self, answer: PredictResponse) -> AsyncIterator[str]:
        yield sse_event("stage1", answer)
        if answer.ticket is None:
            yield sse_event(answer.stage_two.status, answer.stage_two)
            return
        async for event in self._stage_two_events(answer.ticket):
            yield event

    async def _stage_two_events(self, ticket: str) -> AsyncIterator[str]:
        """Heartbeats while stage two is pending, then its terminal event.

        Each long-poll of the store lasts one heartbeat interval, so the store's
        answer doubles as the heartbeat clock. A client that disconnects cancels
        only this read; the ticket itself goes on.
        """
        while True:
            try:
                view = await self._fetch(ticket, self.limits.heartbeat_s)
            except TicketStoreUnavailable:
                view = None  # the store may be restarting: keep the stream and ask again
            if view is not None and view.status not in UNFINISHED:
                yield sse_event("stage2" if view.status == "completed" else view.status, view)
                return
            yield HEARTBEAT

    def _parse_batch(self, body: bytes) -> list[Record | InvalidRecord]:
        try:
            records = BatchRequest.model_validate_json(body).records
        except ValidationError as error:
            raise invalid_record(error) from None
        if len(records) > self.limits.max_batch_records:
            limit = self.limits.max_batch_records
            raise InvalidRecord([FieldError("records", f"at most {limit} records per request")])
        items: list[Record | InvalidRecord] = []
        for values in records:
            try:
                items.append(self.parser.parse_values(values))
            except InvalidRecord as error:
                items.append(error)
        return items


def _ticket_response(view: TicketView) -> JSONResponse:
    """200 once the ticket has ended, 202 (Retry-After) before, 410 when its result is gone."""
    body = view.model_dump(mode="json")
    if view.status in UNFINISHED:
        return JSONResponse(body, status_code=202, headers={"Retry-After": "1"})
    return JSONResponse(body, status_code=410 if view.status in GONE else 200)


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
