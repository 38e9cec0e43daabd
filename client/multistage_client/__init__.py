"""The Python client of the multistage service: stage one at once, stage two when ready.

    from multistage_client import Client

    with Client("http://127.0.0.1:8000") as client:
        answer = client.predict(record)      # returns as soon as stage one is in
        print(answer.stage_one.label)
        print(answer.result(timeout=10).label)  # stage two: event stream, else long-poll

``AsyncClient`` is the same in async code (``await client.predict(record)``, then
``await answer``). Errors: ``ServiceError`` for 4xx/5xx answers (503s and 429s are
retried first, honouring ``Retry-After``), ``StageTwoFailed`` for a ticket that ended
without a result (its ``status`` says how: failed, canceled, expired, lost, rejected,
unavailable), ``TimeoutError`` when stage two is not ready in time.

``client.stream(records)`` sends a feed's records over one stream session (a WebSocket)
and yields both answers of each as they arrive, reconnecting and resuming if the
connection drops (``streams``).

The command line, ``multistage`` (``cli``), is built on ``AsyncClient``.

It imports nothing of the server (no Ray, torch, numpy, xgboost or pandas): ``models``
holds the API's request and response bodies, and the server takes them from here.
"""

from multistage_client.errors import MultistageError, ServiceError, StageTwoFailed, StreamRefused
from multistage_client.http import Answer, AsyncAnswer, AsyncClient, Client
from multistage_client.models import ErrorBody, Prediction, PredictResponse, TicketView
from multistage_client.protocol import SessionSettings
from multistage_client.streams import StreamMessage, StreamSession

__all__ = [
    "Answer",
    "AsyncAnswer",
    "AsyncClient",
    "Client",
    "ErrorBody",
    "MultistageError",
    "Prediction",
    "PredictResponse",
    "ServiceError",
    "SessionSettings",
    "StageTwoFailed",
    "StreamMessage",
    "StreamRefused",
    "StreamSession",
    "TicketView",
]
