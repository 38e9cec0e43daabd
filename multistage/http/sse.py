"""Server-Sent Events framing: named events with JSON data, and heartbeat comments."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.responses import StreamingResponse

# A comment line: clients ignore it, proxies see traffic and keep the stream open.
HEARTBEAT = ": heartbeat\n\n"


def sse_event(name: str, data: BaseModel) -> str:
    # model_dump_json writes no newlines, so the data fits on one "data:" line.
    return f"event: {name}\ndata: {data.model_dump_json()}\n\n"


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No caching, and no buffering by nginx-style proxies: events must arrive as sent.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
