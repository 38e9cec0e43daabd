"""One stream session: a WebSocket carrying a feed's records in, and both answers out.

The protocol is in ``client/multistage_client/protocol.py``. A record is handled as a POST's
is, on the ingress's event loop without pausing (so records keep their order): parsed,
answered by stage one, given a ticket. Its stage-two message follows once the ticket
ends; the replica learns that in its shared waits (``TicketWatcher``), never in a store
call per record. One writer task sends every message, so a record's ``stage1`` always
leaves before its terminal message.

Why a session cancels its unstarted work when it closes, where a POST's ticket outlives
its client: a stream's answers are pushed on its own connection and are worth what they
are fresh, so once it is gone nobody will read them; compute goes to live feeds. Work
a heavy replica has started finishes (and is counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from multistage.config import StreamLimits
from multistage.http.auth import authenticated_as, offered_key
from multistage.http.tenants import Tenants
from multistage.models.records import InvalidRecord, Record, read_json
from multistage.store_calls.submissions import Refusal
from multistage_client.models import ErrorBody, FieldProblem, PredictResponse, TicketView
from multistage_client.protocol import (
    CLOSE_BAD_SETTINGS,
    CLOSE_FORBIDDEN_ORIGIN,
    CLOSE_IDLE,
    CLOSE_SERVER_ERROR,
    CLOSE_UNAUTHORIZED,
    CONTROL_KEY,
    MAX_SEQ_CHARS,
    ErrorMessage,
    Ready,
    Seq,
    SessionSettings,
    StageOneMessage,
    StageTwoMessage,
)

logger = logging.getLogger("ray.serve")

# How long one wait for a ticket lasts before it is asked again (the watcher's calls are
# shared and short whatever this is).
_WAIT_S = 30.0


@dataclass(frozen=True)
class SessionServices:
    """What a session needs from its ingress replica."""

    replica_id: str
    limits: StreamLimits
    max_message_bytes: int
    max_deadline_s: float  # a session's stage-two deadline is capped as a POST's is
    tenants: Tenants | None  # None: the API is open
    # A record from decoded JSON, or InvalidRecord naming the bad fields.
    parse: Callable[[object], Record]
    # Whether the replica is backlogged (stage one sheds the record).
    overloaded: Callable[[], bool]
    # Stage one for the record, taken at ``started``, and its ticket; given a refusal,
    # stage one only, with stage two 'rejected' for that reason.
    answer: Callable[[Record, float, float | None, Refusal | None], PredictResponse]
    issued: Callable[[str], bool]
    # The ticket's view once it has ended, None if not within the timeout.
    ended: Callable[[str, float], Awaitable[TicketView | None]]
    # Cancel those of the tickets no heavy replica has started, off any request's path.
    drop_unstarted: Callable[[list[str]], None]


async def serve_session(websocket: WebSocket, services: SessionServices) -> None:
    """Open the session (origin, authentication, then settings: nothing is read for a
    client not yet known) and run it until either side closes. Every failure closes the
    session with a code and a reason."""
    await websocket.accept()
    try:
        await _open_and_run(websocket, services)
    except WebSocketDisconnect:
        pass
    except Exception:  # noqa: BLE001 - whatever failed, the client gets a close, not a drop
        logger.exception("a stream session failed")
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(CLOSE_SERVER_ERROR, "the server failed; see its log")


async def _open_and_run(websocket: WebSocket, services: SessionServices) -> None:
    if (origin := _refused_origin(websocket, services.limits.allowed_origins)) is not None:
        await websocket.close(CLOSE_FORBIDDEN_ORIGIN, f"origin {origin[:80]} is not allowed")
        return
    if services.tenants is not None:
        tenant = await _authenticated_tenant(websocket, services.tenants, services.limits)
        if tenant is None:
            await websocket.close(CLOSE_UNAUTHORIZED, "a valid API key is required")
            return
        authenticated_as(websocket.scope, tenant)
    try:
        settings = SessionSettings.model_validate(dict(websocket.query_params))
    except ValidationError as error:
        problems = [
            FieldProblem(field=".".join(map(str, p["loc"])), message=p["msg"])
            for p in error.errors(include_url=False, include_input=False)
        ]
        message = "; ".join(f"{p.field}: {p.message}" for p in problems)
        body = ErrorMessage(error="invalid_parameters", message=message, errors=problems)
        await websocket.send_text(body.model_dump_json())
        await websocket.close(CLOSE_BAD_SETTINGS, message[:120])
        return
    await StreamSession(websocket, services, settings).run()


def _refused_origin(websocket: WebSocket, allowed: list[str]) -> str | None:
    """The Origin a browser sent, if the session must be refused for it: neither the
    service's own (the page was served by this host) nor one configured. A client that
    sends none is not a browser, and is not a web page's puppet."""
    origin = websocket.headers.get("origin")
    if origin is None or origin in allowed:
        return None
    if urlsplit(origin).netloc == websocket.headers.get("host"):
        return None
    return origin


async def _authenticated_tenant(
    websocket: WebSocket, tenants: Tenants, limits: StreamLimits
) -> str | None:
    """The tenant of the key in the upgrade request's headers, or in an ``auth`` first
    message; None if neither names one."""
    offered = offered_key(websocket.scope["headers"])
    if offered is not None:
        return tenants.tenant_of(offered)
    try:
        first = await asyncio.wait_for(websocket.receive_text(), limits.auth_timeout_s)
        message = read_json(first, "message")
    except (asyncio.TimeoutError, InvalidRecord, KeyError):
        return None
    if not isinstance(message, dict) or message.get(CONTROL_KEY) != "auth":
        return None
    offered_text = message.get("api_key")
    return tenants.tenant_of(offered_text.encode()) if isinstance(offered_text, str) else None


class StreamSession:
    def __init__(
        self, websocket: WebSocket, services: SessionServices, settings: SessionSettings
    ) -> None:
        self._ws = websocket
        self._services = services
        limits = services.limits
        asked_deadline_s = settings.stage_two_deadline_s or (
            limits.deadline_frames * settings.frame_interval_s
        )
        self.deadline_s = min(asked_deadline_s, services.max_deadline_s)
        asked = settings.max_unfinished or limits.max_unfinished
        self.max_unfinished = min(asked, limits.max_unfinished)
        self._unfinished: dict[str, asyncio.Task] = {}  # ticket -> its delivery
        self._outgoing: asyncio.Queue[str] = asyncio.Queue()

    async def run(self) -> None:
        writer = asyncio.create_task(self._write_forever())
        self._send(
            Ready(
                replica=self._services.replica_id,
                stage_two_deadline_s=self.deadline_s,
                max_unfinished=self.max_unfinished,
                idle_timeout_s=self._services.limits.idle_timeout_s,
                max_message_bytes=self._services.max_message_bytes,
            )
        )
        try:
            await self._read_until_closed(writer)
        finally:
            self._end(writer)

    async def _read_until_closed(self, writer: asyncio.Task) -> None:
        idle_timeout_s = self._services.limits.idle_timeout_s
        while not writer.done():  # the writer ends when the client is gone
            try:
                frame = await asyncio.wait_for(self._ws.receive(), idle_timeout_s)
            except asyncio.TimeoutError:
                if self._unfinished:
                    continue  # answers still to come: waiting for them is not idling
                await self._flush()
                await self._ws.close(CLOSE_IDLE, f"no message for {idle_timeout_s:g} s")
                return
            if frame["type"] == "websocket.disconnect":
                return
            self._on_frame(frame.get("text"))

    def _on_frame(self, text: str | None) -> None:
        """One client message (None: a binary one): a record, a control message, or an
        error for it."""
        if text is None:
            self._error(None, "malformed_message", "message", "must be a JSON text frame")
            return
        limit = self._services.max_message_bytes
        if len(text) > limit or len(text.encode()) > limit:
            self._error(None, "message_too_large", "message", f"exceeds {limit} bytes")
            return
        try:
            values = read_json(text, "message")
        except InvalidRecord as invalid:
            self._error(None, "malformed_json", "message", invalid.errors[0].message)
            return
        if not isinstance(values, dict):
            self._error(None, "malformed_json", "message", "must be a JSON object")
            return
        kind = values.pop(CONTROL_KEY, None)
        seq = values.pop("seq", None)
        if (problem := _seq_problem(seq)) is not None:
            self._error(None, "invalid_record", "seq", problem)
        elif kind is None:
            self._record(seq, values)
        elif kind == "follow":
            self._follow_request(seq, values)
        else:
            self._error(seq, "invalid_message", CONTROL_KEY, f"unknown message type {kind!r}")

    def _record(self, seq: Seq, values: dict) -> None:
        if self._services.overloaded():
            self._error(seq, "overloaded", "message", "the service is overloaded; send it again")
            return
        started = time.perf_counter()
        try:
            record = self._services.parse(values)
        except InvalidRecord as invalid:
            problems = [FieldProblem(field=e.field, message=e.message) for e in invalid.errors]
            body = ErrorMessage(
                error="invalid_record", message=str(invalid), errors=problems, seq=seq
            )
            self._send(body)
            return
        refusal = None
        if len(self._unfinished) >= self.max_unfinished:
            message = (
                f"this session has {self.max_unfinished} records whose stage two has not "
                "ended, its limit (max_unfinished)"
            )
            refusal = Refusal("rejected", ErrorBody(error="session_full", message=message))
        answer = self._services.answer(record, started, time.time() + self.deadline_s, refusal)
        self._send(StageOneMessage(seq=seq, **dict(answer)))
        if answer.ticket is None:
            status = answer.stage_two.status
            refused = StageTwoMessage(type=status, seq=seq, ticket=None, stage_two=answer.stage_two)
            self._send(refused)
        else:
            self._follow(seq, answer.ticket)

    def _follow_request(self, seq: Seq, values: dict) -> None:
        ticket = values.get("ticket")
        if not isinstance(ticket, str) or not self._services.issued(ticket):
            self._error(seq, "unknown_ticket", "ticket", "no such ticket was ever issued")
        elif ticket not in self._unfinished:
            self._follow(seq, ticket)

    def _follow(self, seq: Seq, ticket: str) -> None:
        self._unfinished[ticket] = asyncio.create_task(self._deliver(seq, ticket))

    async def _deliver(self, seq: Seq, ticket: str) -> None:
        while (view := await self._services.ended(ticket, _WAIT_S)) is None:
            pass
        del self._unfinished[ticket]
        name = "stage2" if view.status == "completed" else view.status
        self._send(StageTwoMessage(type=name, seq=seq, ticket=ticket, stage_two=view))

    def _error(self, seq: Seq | None, code: str, field: str, problem: str) -> None:
        self._send(
            ErrorMessage(
                error=code,
                message=f"{field}: {problem}",
                errors=[FieldProblem(field=field, message=problem)],
                seq=seq,
            )
        )

    def _send(self, message: BaseModel) -> None:
        self._outgoing.put_nowait(message.model_dump_json())

    async def _write_forever(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await self._ws.send_text(await self._outgoing.get())
                self._outgoing.task_done()

    async def _flush(self) -> None:
        """Let the writer send what is queued before the session closes."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._outgoing.join()), 1.0)

    def _end(self, writer: asyncio.Task) -> None:
        writer.cancel()
        for delivery in self._unfinished.values():
            delivery.cancel()
        if self._unfinished:
            self._services.drop_unstarted(list(self._unfinished))


def _seq_problem(seq: object) -> str | None:
    """Why ``seq`` is not a record label; None if it is one."""
    if seq is None:
        return "Field required"
    if isinstance(seq, bool) or not isinstance(seq, int | str):
        return "must be an integer or a string"
    if isinstance(seq, str) and len(seq) > MAX_SEQ_CHARS:
        return f"at most {MAX_SEQ_CHARS} characters"
    return None
