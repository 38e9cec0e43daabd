"""The HTTP client (``Client``, ``AsyncClient``): stage one at once, stage two when ready,
by event stream or long-poll; 503s and 429s retried, honouring ``Retry-After``."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from httpx_sse import SSEError, aconnect_sse

from multistage.client import paths
from multistage.client.errors import ServiceError, StageTwoFailed
from multistage.client.models import (
    ErrorBody,
    Prediction,
    PredictResponse,
    StageTwoStatus,
    TicketView,
)
from multistage.client.protocol import SessionSettings
from multistage.client.streams import StreamMessage, StreamSession

T = TypeVar("T")
_RETRIED_STATUSES = (429, 503)
_READ_RETRIED_STATUSES = (500, 502, 504)
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
        """``httpx_options`` go to ``httpx.AsyncClient`` (headers, auth, proxy, transport)."""
        headers = dict(httpx_options.pop("headers", {}))
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self._base_url = base_url
        self._headers = headers
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, headers=headers, **httpx_options
        )
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s

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

    async def result(self, ticket: str, timeout: float = 30.0) -> Prediction:
        """Stage two for ``ticket``: from its event stream, else by long-polling."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            view = await asyncio.wait_for(self._stream_result(ticket), timeout)
        except (SSEError, httpx.TransportError):
            remaining = deadline - asyncio.get_running_loop().time()
            view = await asyncio.wait_for(self._poll_result(ticket), max(remaining, 0))
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
        one stream session that reconnects and resumes (``multistage/client/streams.py``)."""
        return StreamSession(
            self._base_url,
            records,
            headers=self._headers,
            settings=settings,
            max_reconnects=max_reconnects,
        )

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
        # No read timeout: heartbeats keep the stream alive; result() bounds the wait.
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        async with aconnect_sse(self._http, "GET", url, timeout=timeout) as events:
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
        """The response, after retries; an error status not in ``accept`` raises.

        Any request is retried on 503 and 429 (the service did not take it); a GET also on
        other 5xx answers and dropped connections, as when its ingress replica just died.
        """
        retried = _RETRIED_STATUSES + (_READ_RETRIED_STATUSES if method == "GET" else ())
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = await self._http.request(method, url, **kwargs)
            except httpx.TransportError:
                if method != "GET" or last:
                    raise
                await asyncio.sleep(self._retry_delay(None, attempt))
                continue
            if response.status_code not in retried or last:
                break
            await asyncio.sleep(self._retry_delay(response, attempt))
        if response.is_error and response.status_code not in accept:
            raise _service_error(response)
        return response

    def _retry_delay(self, response: httpx.Response | None, attempt: int) -> float:
        retry_after = None if response is None else _retry_after_s(response)
        if retry_after is None:
            # Exponential backoff with jitter, so retrying clients do not arrive in step.
            retry_after = self._backoff_s * 2**attempt * random.uniform(0.5, 1.5)
        return min(retry_after, self._max_backoff_s)


class Client:
    """The synchronous client: ``AsyncClient`` run on a private event-loop thread."""

    def __init__(self, base_url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._async = AsyncClient(base_url, **options)

    def predict(self, record: dict, deadline_s: float | None = None) -> Answer:
        return self._sync_answer(self._run(self._async.predict(record, deadline_s)))

    def predict_many(
        self, records: list[dict], deadline_s: float | None = None
    ) -> list[Answer | ServiceError]:
        outcomes = self._run(self._async.predict_many(records, deadline_s))
        return [o if isinstance(o, ServiceError) else self._sync_answer(o) for o in outcomes]

    def result(self, ticket: str, timeout: float = 30.0) -> Prediction:
        return self._run(self._async.result(ticket, timeout))

    def cancel(self, ticket: str) -> TicketView:
        return self._run(self._async.cancel(ticket))

    def stream(
        self, records: Iterable[dict], settings: SessionSettings | None = None
    ) -> Iterator[StreamMessage]:
        """``AsyncClient.stream``, as a plain iterator (``records`` is read on the
        client's event-loop thread: keep it quick)."""
        messages = self._async.stream(records, settings).messages()

        async def next_message() -> StreamMessage:
            return await anext(messages)

        async def close() -> None:
            await messages.aclose()

        try:
            while True:
                try:
                    yield self._run(next_message())
                except StopAsyncIteration:
                    return
        finally:
            self._run(close())

    def close(self) -> None:
        self._run(self._async.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _sync_answer(self, answer: AsyncAnswer) -> Answer:
        def fetch(timeout: float) -> Prediction:
            return self._run(answer.result(timeout))

        return Answer(answer.ticket, answer.stage_one, answer.stage_two, fetch)

    def _run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


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
