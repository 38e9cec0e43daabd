"""The HTTP client (``Client``, ``AsyncClient``): stage one at once, stage two when ready,
by event stream or long-poll; 503s and 429s retried, honouring ``Retry-After``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
from anyio.from_thread import start_blocking_portal
from httpx_retries import Retry, RetryTransport
from httpx_sse import SSEError, aconnect_sse

from multistage_client import paths
from multistage_client.errors import ServiceError, StageTwoFailed
from multistage_client.models import (
    ErrorBody,
    ModelsResponse,
    Prediction,
    PredictResponse,
    StageTwoStatus,
    TicketView,
)
from multistage_client.protocol import SessionSettings
from multistage_client.streams import StreamMessage, StreamSession

# Any request is retried when the service did not take it: 503 and 429 answers, and
# connections that never opened. A read is also retried on other 5xx answers and dropped
# connections, as when its ingress replica just died; a write is not, since it may have run.
_NOT_TAKEN_STATUSES = (429, 503)
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
_READ_RETRIED_STATUSES = (*_NOT_TAKEN_STATUSES, 500, 502, 504)
_LONG_POLL_S = 30.0


@dataclass
class Answer:
    """Stage one's answer and the ticket for stage two."""

    ticket: str | None
    stage_one: Prediction
    stage_two: StageTwoStatus
    _fetch: Callable[[float], Any] = field(repr=False)

    def result(self, timeout: float = 30.0) -> Prediction:
        """Stage two's prediction, waiting up to ``timeout`` seconds."""
        return self._fetch(timeout)


class AsyncAnswer(Answer):
    async def result(self, timeout: float = 30.0) -> Prediction:  # type: ignore[override]
        return await self._fetch(timeout)

    def __await__(self):
        return self.result().__await__()


class AsyncClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.1,
        max_backoff_s: float = 10.0,
        api_key: str | None = None,
        **httpx_options: Any,
    ) -> None:
        """``httpx_options`` go to ``httpx.AsyncClient`` (headers, auth, proxy, transport).

        Retries wait ``Retry-After`` where the answer gives one, else back off exponentially
        from ``backoff_s`` (with jitter, so retrying clients do not arrive in step), each wait
        at most ``max_backoff_s``."""
        headers = dict(httpx_options.pop("headers", {}))
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        backoff = {
            "total": max_retries,
            "backoff_factor": backoff_s,
            "max_backoff_wait": max_backoff_s,
            "backoff_jitter": 0.5,
        }
        self._read_retry = Retry(
            allowed_methods=["GET"], status_forcelist=_READ_RETRIED_STATUSES, **backoff
        )
        write_retry = Retry(
            allowed_methods=["POST", "DELETE", "GET"],
            status_forcelist=_NOT_TAKEN_STATUSES,
            retry_on_exceptions=_NOT_SENT_ERRORS,
            **backoff,
        )
        transport = RetryTransport(
            httpx_options.pop("transport", None) or httpx.AsyncHTTPTransport(), write_retry
        )
        self._base_url = base_url
        self._headers = headers
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            headers=headers,
            transport=transport,
            **httpx_options,
        )

    async def predict(self, record: dict, deadline_s: float | None = None) -> AsyncAnswer:
        """Stage one now; stage two is skipped if it cannot start within ``deadline_s``."""
        params = _deadline_params(deadline_s)
        response = await self._request("POST", paths.PREDICT, json=record, params=params)
        return self._answer(PredictResponse.model_validate_json(response.content))

    async def predict_many(
        self, records: list[dict], deadline_s: float | None = None
    ) -> list[AsyncAnswer | ServiceError]:
        """One result per record, in order: its answer, or its own error (422)."""
        response = await self._request(
            "POST",
            paths.PREDICT_BATCH,
            json={"records": records},
            params=_deadline_params(deadline_s),
        )
        outcomes: list[AsyncAnswer | ServiceError] = []
        for item in response.json()["results"]:
            if item["error"] is not None:
                outcomes.append(ServiceError(422, ErrorBody.model_validate(item["error"])))
            else:
                outcomes.append(self._answer(PredictResponse.model_validate(item)))
        return outcomes

    async def wait(self, ticket: str, timeout: float = 30.0) -> TicketView:
        """The ticket once it has ended, however it ended: from its event stream, else by
        long-polling; ``TimeoutError`` if it has not ended within ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await asyncio.wait_for(self._stream_result(ticket), timeout)
        except (SSEError, httpx.TransportError):
            remaining = deadline - asyncio.get_running_loop().time()
            return await asyncio.wait_for(self._poll_result(ticket), max(remaining, 0))

    async def result(self, ticket: str, timeout: float = 30.0) -> Prediction:
        """Stage two for ``ticket``; ``StageTwoFailed`` if it ended without a result."""
        view = await self.wait(ticket, timeout)
        if view.status != "completed":
            raise StageTwoFailed(ticket, view.status, view.error)
        return view.result

    def stream(
        self,
        records: Iterable[dict] | AsyncIterable[dict],
        settings: SessionSettings | None = None,
        max_reconnects: int = 5,
    ) -> StreamSession:
        """Both answers of each record, as they arrive (``async for message in ...``), over
        one stream session that reconnects and resumes (``client/multistage_client/streams.py``)."""
        return StreamSession(
            self._base_url,
            records,
            headers=self._headers,
            settings=settings,
            max_reconnects=max_reconnects,
        )

    async def ticket(self, ticket: str) -> TicketView:
        """The ticket as it is now, without waiting (its ``status`` may be unfinished)."""
        response = await self._request("GET", paths.ticket_path(ticket), accept=(410,))
        return TicketView.model_validate_json(response.content)

    async def models(self) -> ModelsResponse:
        """The models serving each stage, the input schema and an example record."""
        response = await self._request("GET", paths.MODELS)
        return ModelsResponse.model_validate_json(response.content)

    async def cancel(self, ticket: str) -> TicketView:
        """Cancel the ticket's stage two; the ticket's state afterwards (409 if it had ended)."""
        response = await self._request("DELETE", paths.ticket_path(ticket), accept=(410,))
        return TicketView.model_validate_json(response.content)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    def _answer(self, response: PredictResponse) -> AsyncAnswer:
        async def fetch(timeout: float) -> Prediction:
            if response.ticket is None:
                stage_two = response.stage_two
                raise StageTwoFailed(None, stage_two.status, stage_two.error)
            return await self.result(response.ticket, timeout)

        return AsyncAnswer(response.ticket, response.stage_one, response.stage_two, fetch)

    async def _stream_result(self, ticket: str) -> TicketView:
        url = paths.ticket_events_path(ticket)
        # No read timeout: heartbeats keep the stream alive; wait() bounds the wait.
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        retry = {"retry": self._read_retry}
        async with aconnect_sse(
            self._http, "GET", url, timeout=timeout, extensions=retry
        ) as events:
            if events.response.status_code != 200:
                await events.response.aread()
                raise _service_error(events.response)
            async for event in events.aiter_sse():
                # The one event with a name is the terminal one: the ticket as it ended.
                if event.event != "message":
                    return TicketView.model_validate_json(event.data)
        raise SSEError("the event stream closed before stage two")

    async def _poll_result(self, ticket: str) -> TicketView:
        while True:
            response = await self._request(
                "GET",
                paths.ticket_path(ticket),
                params={"wait": _LONG_POLL_S},
                timeout=_LONG_POLL_S + self._http.timeout.connect,
                accept=(410,),
            )
            if response.status_code != 202:
                return TicketView.model_validate_json(response.content)

    async def _request(
        self, method: str, url: str, accept: tuple[int, ...] = (), **kwargs
    ) -> httpx.Response:
        """The response, after retries; an error status not in ``accept`` raises."""
        if method == "GET":
            kwargs["extensions"] = {"retry": self._read_retry}
        response = await self._http.request(method, url, **kwargs)
        if response.is_error and response.status_code not in accept:
            raise _service_error(response)
        return response


class Client:
    """The synchronous client: ``AsyncClient`` run on an event loop in a thread of its own
    (anyio's blocking portal)."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._exit_stack = ExitStack()
        self._portal = self._exit_stack.enter_context(start_blocking_portal())
        self._async = AsyncClient(base_url, **options)

    def predict(self, record: dict, deadline_s: float | None = None) -> Answer:
        return self._sync_answer(self._portal.call(self._async.predict, record, deadline_s))

    def predict_many(
        self, records: list[dict], deadline_s: float | None = None
    ) -> list[Answer | ServiceError]:
        outcomes = self._portal.call(self._async.predict_many, records, deadline_s)
        return [o if isinstance(o, ServiceError) else self._sync_answer(o) for o in outcomes]

    def result(self, ticket: str, timeout: float = 30.0) -> Prediction:
        return self._portal.call(self._async.result, ticket, timeout)

    def wait(self, ticket: str, timeout: float = 30.0) -> TicketView:
        return self._portal.call(self._async.wait, ticket, timeout)

    def ticket(self, ticket: str) -> TicketView:
        return self._portal.call(self._async.ticket, ticket)

    def models(self) -> ModelsResponse:
        return self._portal.call(self._async.models)

    def cancel(self, ticket: str) -> TicketView:
        return self._portal.call(self._async.cancel, ticket)

    def stream(
        self, records: Iterable[dict], settings: SessionSettings | None = None
    ) -> Iterator[StreamMessage]:
        """``AsyncClient.stream``, as a plain iterator (``records`` is read on the
        client's event-loop thread: keep it quick)."""
        messages = self._async.stream(records, settings).messages()
        try:
            while True:
                try:
                    yield self._portal.call(messages.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(messages.aclose)

    def close(self) -> None:
        with self._exit_stack:
            self._portal.call(self._async.aclose)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _sync_answer(self, answer: AsyncAnswer) -> Answer:
        def fetch(timeout: float) -> Prediction:
            return self._portal.call(answer.result, timeout)

        return Answer(answer.ticket, answer.stage_one, answer.stage_two, fetch)


def _deadline_params(deadline_s: float | None) -> dict[str, float]:
    return {} if deadline_s is None else {"deadline_s": deadline_s}


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date: fall back to backoff


def _service_error(response: httpx.Response) -> ServiceError:
    try:
        body = ErrorBody.model_validate_json(response.content)
    except ValueError:
        body = ErrorBody(error="http_error", message=response.text[:500] or response.reason_phrase)
    return ServiceError(response.status_code, body, _retry_after_s(response))
