"""streams: 10/s feeds held under the streams bound, over HTTP (POST, then long-poll) and
over stream sessions (one WebSocket each)."""

from __future__ import annotations

from benchmarks.load_search import STREAM_BOUND, Search, search
from benchmarks.part import Part, Row, Service, ratio
from multistage_client import paths

STREAM_RATE = 10.0


def measure(service: Service) -> dict:
    return search(
        service,
        {
            "http": Search("StreamUser", STREAM_RATE, paths.PREDICT, STREAM_BOUND, 4),
            "sessions": Search("StreamSessionUser", STREAM_RATE, paths.PREDICT, STREAM_BOUND, 8),
        },
    ) | {"bound": STREAM_BOUND.__dict__}


def rows(by_cluster: dict[str, dict]) -> list[Row]:
    if not (s := by_cluster.get("haproxy")):
        return []
    http, sessions = s["held"]["http"]["users"], s["held"]["sessions"]["users"]
    times_http = f" ({ratio(sessions, http)}x HTTP)" if http else ""
    return [
        ("10/s streams held over HTTP: POST, then long-poll", str(http), ">= 12"),
        (
            "10/s streams held on stream sessions (WebSocket)",
            f"{sessions}{times_http}",
            ">= 25 and >= 2x HTTP",
        ),
    ]


PART = Part("streams", measure, rows)
