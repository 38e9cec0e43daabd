"""Where the API lives: its paths, its own header names, and a ticket's URL.

The ingress routes, the Python client, the load tests and the tests all take them from
here, so a path is spelled once.
"""

from __future__ import annotations

API_VERSION = "v1"
API_PREFIX = f"/{API_VERSION}"
PREDICT = f"{API_PREFIX}/predict"
PREDICT_STREAM = f"{API_PREFIX}/predict/stream"
PREDICT_BATCH = f"{API_PREFIX}/predict/batch"
PREDICTION = f"{API_PREFIX}/predictions/{{ticket}}"
PREDICTION_EVENTS = f"{API_PREFIX}/predictions/{{ticket}}/events"
MODELS = f"{API_PREFIX}/models"
STREAMS = f"{API_PREFIX}/streams"  # a WebSocket: one stream session
HEALTHZ = "/healthz"

# stage_two.status of a predict answer, repeated as a header.
STAGE_TWO_HEADER = "X-Stage-Two-Status"
# The ingress replica that answered, to trace a request.
INGRESS_REPLICA_HEADER = "X-Ingress-Replica"
# Serve's id of an HTTP request: the client's, or one Serve made (and answers with).
REQUEST_ID_HEADER = "X-Request-ID"


def ticket_path(ticket: str, root_path: str = "") -> str:
    """Where stage two of ``ticket`` is fetched, under the app's ``root_path``."""
    return root_path + PREDICTION.format(ticket=ticket)


def ticket_events_path(ticket: str, root_path: str = "") -> str:
    return root_path + PREDICTION_EVENTS.format(ticket=ticket)
