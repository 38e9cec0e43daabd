"""The HTTP ingress: stage one, answered in this process, and tickets for stage two.

A predict request costs no Serve call: the record is parsed and validated, XGBoost runs
here, a signed ticket id is minted here, and the answer leaves. A stream session's records
(``GET /v1/streams``, ``multistage/streams/session.py``) take the same path. The ticket's stage-two
work follows in a shared call to the ticket store (``SubmissionQueue``), and clients
waiting for stage two share one wait per replica (``TicketWatcher``). Scaling this
deployment scales stage one.

Stateless by design: tickets live in the TicketStore, so any replica of this
deployment can answer for any ticket, and losing one loses only the submissions it had
not yet sent.

No ``from __future__ import annotations`` here: FastAPI reads the route methods'
annotations at runtime.
"""

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Query, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from multistage.admission.load_shedding import LoopBacklog
from multistage.config import HttpLimits, StoreCalls, StreamLimits, TicketPolicy
from multistage.http.app import build_http_app
from multistage.http.auth import AuthArgs, load_tenants, tenant_of
from multistage.http.errors import (
    Overloaded,
    UnknownTicket,
    error_response,
    invalid_record_body,
)
from multistage.http.health import Health, HealthReadings
from multistage.http.requests import Asker, read_body
from multistage.http.responses import json_response, ticket_response
from multistage.http.sse import HEARTBEAT, event_stream, sse_event
from multistage.metrics.exported import IngressMetrics
from multistage.models.records import (
    InvalidRecord,
    Record,
    RecordParser,
)
from multistage.models.schema import RecordSchema
from multistage.models.stage_one import StageOneModel
from multistage.ray_private import ingress_built_per_replica
from multistage.store_calls.client import TicketStoreClient
from multistage.store_calls.submissions import Refusal, SubmissionQueue
from multistage.store_calls.watch import TicketWatcher
from multistage.streams.session import SessionServices, serve_session
from multistage.tickets.ids import TicketIds
from multistage.tickets.wire import Submission
from multistage_client import paths
from multistage_client.models import (
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

logger = logging.getLogger("ray.serve")

DEADLINE_QUERY = Query(
    None,
    gt=0,
    description=(
        "Seconds from now by which stage two must start; later, it is skipped and the "
        "ticket reads 'expired'. Capped by http.max_deadline_s."
    ),
)
WAIT_QUERY = Query(0.0, ge=0, description="Seconds to wait for stage two (long-poll); capped.")
# A shared wait ends after this long even if none of its tickets has: its tickets then
# join the next, so waits on slow tickets merge instead of piling up.
SHARED_WAIT_S = 1.0
# How long a stopping replica waits for the store to take its unsent submissions.
FLUSH_AT_STOP_S = 5.0


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=10_000)
# Built per replica, after __init__: the request model comes from the schema.
@ingress_built_per_replica(build_http_app)
class Ingress:
    async def __init__(
        self,
        store: DeploymentHandle,
        *,
        stage_one_path: str,
        schema: RecordSchema,
        models: dict[str, ModelInfo],
        limits: HttpLimits,
        store_calls: StoreCalls,
        ticket_policy: TicketPolicy,
        streams: StreamLimits,
        auth: AuthArgs,
        ticket_secret: bytes,
    ) -> None:
        self._stage_one = StageOneModel(stage_one_path, models["stage_one"], schema.classes)
        self._models = models
        self._schema = schema
        self._parser = RecordParser(schema)
        self._limits = limits
        self._ids = TicketIds(ticket_secret)
        self._store = TicketStoreClient(
            store, timeout_s=store_calls.timeout_s, grpc=store_calls.by_value
        )
        self._submissions = SubmissionQueue(
            self._store.submit,
            max_per_call=store_calls.max_per_call,
            max_unsent=store_calls.max_unsent,
            every_s=store_calls.every_s,
            submission_timeout_s=ticket_policy.submission_timeout_s,
            max_unfinished=ticket_policy.max_unfinished,
        )
        self._watcher = TicketWatcher(
            self._store.wait_ended,
            every_s=store_calls.every_s,
            call_wait_s=SHARED_WAIT_S,
            on_load=self._submissions.gate.report,
        )
        self._backlog = LoopBacklog(shed_after_s=limits.shed_after_ms / 1000)
        self._metrics = IngressMetrics()
        self._streams = streams
        self._drops: set[asyncio.Task] = set()  # held: the loop keeps only weak references
        # Read here, in the replica's own environment, so the key never travels in config.
        self.tenants = load_tenants(auth)
        logger.info("API key authentication is %s", "on" if self.tenants else "off")
        self.request_schema = self._parser.json_schema
        self.example_request = schema.example
        self.max_batch_records = limits.max_batch_records
        context = serve.get_replica_context()
        self._app_name = context.app_name
        self._health = HealthReadings(self._read_health)
        self.replica_id = context.replica_id.unique_id

    async def __del__(self) -> None:
        """On a graceful stop (scale-down, redeploy), hand the store what is still unsent:
        only a replica killed outright loses the submissions of its last moments."""
        if left := await self._submissions.flush(timeout_s=FLUSH_AT_STOP_S):
            logger.warning("stopping with %d submissions the ticket store did not take", left)

    async def predict(
        self, request: Request, deadline_s: float | None = DEADLINE_QUERY
    ) -> PredictResponse:
        started = self._accept()
        record = await self._record(request)
        (answer,) = self._answer([record], started, self._deadline(deadline_s), request.scope)
        return json_response(answer, headers={paths.STAGE_TWO_HEADER: answer.stage_two.status})

    async def predict_stream(
        self, request: Request, deadline_s: float | None = DEADLINE_QUERY
    ) -> StreamingResponse:
        # Bad input is answered as a plain 4xx before the stream starts.
        started = self._accept()
        record = await self._record(request)
        (answer,) = self._answer([record], started, self._deadline(deadline_s), request.scope)
        stream = event_stream(self._stage_one_then_two(answer))
        stream.headers[paths.STAGE_TWO_HEADER] = answer.stage_two.status
        return stream

    async def predict_batch(
        self, request: Request, deadline_s: float | None = DEADLINE_QUERY
    ) -> BatchResponse:
        started = self._accept()
        items = self._parser.parse_batch(
            await read_body(request, self._limits.max_body_bytes), self._limits.max_batch_records
        )
        good = [(i, item) for i, item in enumerate(items) if isinstance(item, Record)]
        results = [
            BatchItem(index=i, error=invalid_record_body(item))
            for i, item in enumerate(items)
            if isinstance(item, InvalidRecord)
        ]
        if good:
            records = [record for _, record in good]
            answers = self._answer(records, started, self._deadline(deadline_s), request.scope)
            results += [
                BatchItem(index=i, ticket=a.ticket, stage_one=a.stage_one, stage_two=a.stage_two)
                for (i, _), a in zip(good, answers, strict=True)
            ]
        return json_response(BatchResponse(results=sorted(results, key=lambda item: item.index)))

    async def get_prediction(
        self, request: Request, ticket: str, wait: float = WAIT_QUERY
    ) -> TicketView:
        self._check_issued(ticket, request.scope)
        wait_s = min(wait, self._limits.max_wait_s)
        view = await self._watcher.ended(ticket, wait_s) if wait_s > 0 else None
        return ticket_response(view or await self._store.view(ticket))

    async def cancel_prediction(self, request: Request, ticket: str) -> TicketView:
        self._check_issued(ticket, request.scope)
        view = await self._store.cancel(ticket)
        # Unfinished: another store replica holds it, and has been asked to cancel it.
        if view.status in ("canceled", *GONE, *UNFINISHED):
            return ticket_response(view)
        return error_response(
            409, "already_finished", f"ticket {ticket!r} already ended: {view.status}"
        )

    async def prediction_events(self, request: Request, ticket: str) -> StreamingResponse:
        self._check_issued(ticket, request.scope)  # an unknown ticket: a 404, not a stream
        return event_stream(self._stage_two_events(ticket))

    async def stream_session(self, websocket: WebSocket) -> None:
        """A stream session: records in, both stages' answers pushed back (WebSocket)."""
        scope = websocket.scope

        def answer(
            record: Record, started: float, deadline: float | None, refusal: Refusal | None
        ) -> PredictResponse:
            return self._answer([record], started, deadline, scope, refusal)[0]

        services = SessionServices(
            replica_id=self.replica_id,
            limits=self._streams,
            max_message_bytes=self._limits.max_body_bytes,
            max_deadline_s=self._limits.max_deadline_s,
            tenants=self.tenants,
            parse=self._parser.parse_values,
            overloaded=self._shed,
            answer=answer,
            issued=lambda ticket: self._ids.issued_to(ticket, tenant_of(scope)),
            ended=self._watcher.ended,
            drop_unstarted=self._drop_unstarted,
        )
        await serve_session(websocket, services)

    async def healthz(self) -> JSONResponse:
        health = await self._health.current()
        return JSONResponse(
            {"status": "ok" if health.ready else "unavailable", "deployments": health.deployments},
            status_code=200 if health.ready else 503,
        )

    async def _read_health(self) -> Health:
        # serve.status() blocks on the controller: keep it off the event loop.
        status = await asyncio.to_thread(serve.status)
        app = status.applications.get(self._app_name)
        if app is None:
            return Health(ready=False)
        deployments = {name: d.status.value for name, d in app.deployments.items()}
        return Health(ready=app.status.value == "RUNNING", deployments=deployments)

    async def models(self) -> ModelsResponse:
        return ModelsResponse(
            stage_one=self._models["stage_one"],
            stage_two=self._models["stage_two"],
            classes=self._schema.classes,
            input_schema=self.request_schema,
            example_request=self._schema.example,
        )

    def _accept(self) -> float:
        """When the request was taken; refuses it (503) if the replica is backlogged."""
        if self._shed():
            raise Overloaded()
        return time.perf_counter()

    def _shed(self) -> bool:
        """Whether stage one sheds a record arriving now (counted)."""
        if self._backlog.overloaded():
            self._metrics.rejected("stage_one_overloaded")
            return True
        return False

    async def _record(self, request: Request) -> Record:
        return self._parser.parse(await read_body(request, self._limits.max_body_bytes))

    def _answer(
        self,
        records: list[Record],
        started: float,
        deadline: float | None,
        scope: dict,
        refusal: Refusal | None = None,
    ) -> list[PredictResponse]:
        """Stage one for the records, one vectorised call, and a ticket each if stage two
        takes them (a stream session past its bound gives its ``refusal``: none is taken):
        the path every predict endpoint and stream session shares."""
        predictions = self._stage_one.predict(np.stack([r.features for r in records]))
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        asker = Asker.of(scope, self.tenants)
        answers = []
        for record, prediction in zip(records, predictions, strict=True):
            prediction.latency_ms = latency_ms
            self._metrics.stage_one_answered(latency_ms)
            answers.append(self._issue(record, prediction, deadline, asker, refusal))
        return answers

    def _issue(
        self,
        record: Record,
        prediction: Prediction,
        deadline: float | None,
        asker: Asker,
        refusal: Refusal | None,
    ) -> PredictResponse:
        """A ticket for the record's stage two, or the reason stage two refuses it.

        No log line here: it cost stage one about a tenth of its CPU. The store's lines
        for the ticket name the HTTP request that issued it.
        """
        refusal = refusal or self._submissions.refusal()
        if refusal is not None:
            self._metrics.rejected(refusal.error.error, asker.tenant)
            status = StageTwoStatus(status=refusal.status, error=refusal.error)
            return PredictResponse(ticket=None, stage_one=prediction, stage_two=status)
        issued_at = time.time()
        ticket = self._ids.issue(issued_at, asker.tenant)
        submission = Submission(
            ticket,
            record,
            deadline,
            prediction.label,
            asker.request_id,
            asker.tenant,
            asker.tenant_limit,
        )
        self._submissions.put(submission, issued_at)
        status = StageTwoStatus(status="pending", url=paths.ticket_path(ticket, asker.root))
        return PredictResponse(ticket=ticket, stage_one=prediction, stage_two=status)

    def _deadline(self, deadline_s: float | None) -> float | None:
        if deadline_s is None:
            return None
        return time.time() + min(deadline_s, self._limits.max_deadline_s)

    def _drop_unstarted(self, tickets: list[str]) -> None:
        """Cancel the tickets' stage two unless a heavy replica has started it: a closed
        stream session's work, which nobody will read.

        In a context of its own: Serve cancels the calls of a request whose client has
        gone, and this call is made because the client has gone.
        """
        call = self._store.cancel_unstarted(tickets)
        task = contextvars.Context().run(asyncio.create_task, call)
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    def _check_issued(self, ticket: str, scope: dict) -> None:
        """Made-up ids, and another tenant's, never reach the store: the signature tells
        them from the ids issued to this request's tenant."""
        if not self._ids.issued_to(ticket, tenant_of(scope)):
            raise UnknownTicket(ticket)

    async def _stage_one_then_two(self, answer: PredictResponse) -> AsyncIterator[str]:
        yield sse_event("stage1", answer)
        if answer.ticket is None:
            yield sse_event(answer.stage_two.status, answer.stage_two)
            return
        async for event in self._stage_two_events(answer.ticket):
            yield event

    async def _stage_two_events(self, ticket: str) -> AsyncIterator[str]:
        """Heartbeats while stage two is unfinished, then its terminal event.

        A client that disconnects ends only this generator; the ticket itself goes on.
        """
        while True:
            view = await self._watcher.ended(ticket, self._limits.heartbeat_s)
            if view is not None:
                yield sse_event("stage2" if view.status == "completed" else view.status, view)
                return
            yield HEARTBEAT
