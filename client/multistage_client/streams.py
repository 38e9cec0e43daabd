"""The client side of a stream session: records in, both answers out, across reconnects.

    async for message in client.stream(records):   # AsyncClient; Client.stream is sync
        if message.type == "stage1": ...           # StageOneMessage
        elif message.type == "error": ...          # ErrorMessage (that record is done)
        else: ...                                  # StageTwoMessage: 'stage2' or how it ended

Each record is sent with a ``seq`` (its own, or its position in ``records``), and every
message names it. If the connection drops (its ingress replica died, say), the session
reconnects (HAProxy picks a live replica), sends again the records whose stage one never
came, and follows the tickets whose stage two had not come, so each record still gets
both answers. The stream ends once ``records`` is exhausted and every record has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from urllib.parse import urlencode

import websockets

from multistage_client import paths
from multistage_client.errors import StreamRefused
from multistage_client.protocol import (
    CLOSE_BAD_SETTINGS,
    CLOSE_UNAUTHORIZED,
    ErrorMessage,
    Ready,
    Seq,
    SessionSettings,
    StageOneMessage,
    StageTwoMessage,
)

StreamMessage = StageOneMessage | StageTwoMessage | ErrorMessage
_FATAL_CLOSES = (CLOSE_UNAUTHORIZED, CLOSE_BAD_SETTINGS)


class StreamSession:
    """One logical stream over as many WebSocket connections as it takes."""

    def __init__(
        self,
        base_url: str,
        records: Iterable[dict] | AsyncIterable[dict],
        *,
        headers: dict[str, str],
        settings: SessionSettings | None = None,
        max_reconnects: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        query = (settings or SessionSettings()).model_dump(exclude_none=True)
        root = base_url.replace("http", "ws", 1).rstrip("/")
        self._url = f"{root}{paths.STREAMS}?{urlencode(query)}"
        self._records = records
        # One record ahead of the connection: a connection that drops cancels only its
        # wait on this queue, never the caller's iterator (cancelling that ends it).
        self._next_records: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=1)
        self._headers = headers
        self._max_reconnects = max_reconnects
        self._backoff_s = backoff_s
        self._next_seq = 0
        self._exhausted = False
        self._unanswered: dict[Seq, str] = {}  # sent, no stage one yet: seq -> message
        self._following: dict[Seq, str] = {}  # stage one came, stage two not yet: seq -> ticket
        self.connections = 0
        self.ready: Ready | None = None  # the latest connection's settings

    def __aiter__(self) -> AsyncIterator[StreamMessage]:
        return self.messages()

    async def messages(self) -> AsyncIterator[StreamMessage]:
        reader = asyncio.create_task(self._read_records())
        try:
            async for message in self._reconnecting():
                yield message
        finally:
            reader.cancel()

    async def _reconnecting(self) -> AsyncIterator[StreamMessage]:
        failures = 0
        while not self._done():
            try:
                async for message in self._connection():
                    failures = 0
                    yield message
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                if code in _FATAL_CLOSES:
                    raise StreamRefused(code, closed.rcvd.reason) from None
                failures += 1
            except (OSError, websockets.InvalidHandshake):
                failures += 1  # no replica took the connection (yet)
            if failures > self._max_reconnects:
                raise ConnectionError(f"stream session lost {failures} times in a row")
            if failures:
                await asyncio.sleep(self._backoff_s * 2 ** (failures - 1))

    async def _connection(self) -> AsyncIterator[StreamMessage]:
        async with websockets.connect(self._url, additional_headers=self._headers) as ws:
            self.connections += 1
            self.ready = Ready.model_validate_json(await ws.recv())
            for message in list(self._unanswered.values()):
                await ws.send(message)
            for seq, ticket in list(self._following.items()):
                await ws.send(json.dumps({"type": "follow", "seq": seq, "ticket": ticket}))
            feeder = asyncio.create_task(self._feed(ws))
            try:
                while not self._done():
                    message = parse_message(await ws.recv())
                    self._note(message)
                    yield message
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                    await feeder

    async def _read_records(self) -> None:
        async for record in _aiter(self._records):
            await self._next_records.put(record)
        await self._next_records.put(None)

    async def _feed(self, ws) -> None:
        while (record := await self._next_records.get()) is not None:
            seq = record.get("seq", self._next_seq)
            self._next_seq += 1
            message = json.dumps({**record, "seq": seq})
            self._unanswered[seq] = message  # before sending: sent again if the send fails
            await ws.send(message)
        self._exhausted = True

    def _note(self, message: StreamMessage) -> None:
        self._unanswered.pop(message.seq, None)
        if isinstance(message, StageOneMessage) and message.ticket is not None:
            self._following[message.seq] = message.ticket
        elif not isinstance(message, StageOneMessage):
            self._following.pop(message.seq, None)

    def _done(self) -> bool:
        return self._exhausted and not self._unanswered and not self._following


def parse_message(text: str | bytes) -> StreamMessage:
    """A server message as its model, chosen by its ``type``."""
    values = json.loads(text)
    model = {"stage1": StageOneMessage, "error": ErrorMessage}.get(values.get("type"))
    return (model or StageTwoMessage).model_validate(values)


async def _aiter(records: Iterable[dict] | AsyncIterable[dict]) -> AsyncIterator[dict]:
    if isinstance(records, AsyncIterable):
        async for record in records:
            yield record
    else:
        for record in records:
            yield record
