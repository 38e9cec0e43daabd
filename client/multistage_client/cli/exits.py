"""What the command line's exit status says, and which error leads to which."""

from __future__ import annotations

import asyncio
from enum import IntEnum

import httpx
import websockets

from multistage_client.errors import (
    MultistageError,
    ServiceError,
    StageTwoFailed,
    StreamRefused,
)
from multistage_client.protocol import CLOSE_UNAUTHORIZED

# A ticket that ended this way was refused work, not failed work.
_REFUSED_STATUSES = ("rejected", "unavailable")


class Exit(IntEnum):
    OK = 0
    NOT_COMPLETED = 1
    BAD_INPUT = 2
    REFUSED = 3
    NOT_READY = 4
    KEY_REFUSED = 5
    SERVICE_DOWN = 6
    UNEXPECTED = 70


MEANINGS = {
    Exit.OK: "every ticket completed (cancel: the ticket was canceled)",
    Exit.NOT_COMPLETED: "stage two ended without a result: failed, canceled, expired or lost",
    Exit.BAD_INPUT: "bad usage, or a file that is missing or not JSON records",
    Exit.REFUSED: "refused: an invalid record, stage two full (rejected), an unknown or "
    "already ended ticket",
    Exit.NOT_READY: "stage two not ended within --timeout (get: not ended yet)",
    Exit.KEY_REFUSED: "the API key was missing or refused",
    Exit.SERVICE_DOWN: "the service could not be reached, or answered with a server error",
    Exit.UNEXPECTED: "anything else (a bug: the line names the exception)",
}


class BadInput(MultistageError):
    """A file or argument the command line cannot use; the message names it."""


def for_status(status: str) -> Exit:
    """The exit status for a ticket, or a stream record, that ended with ``status``."""
    if status in ("completed", "stage2"):
        return Exit.OK
    if status in _REFUSED_STATUSES:
        return Exit.REFUSED
    if status in ("pending", "running"):
        return Exit.NOT_READY
    return Exit.NOT_COMPLETED


def for_error(error: BaseException, url: str) -> tuple[Exit, str]:
    """The exit status for ``error``, and the one line that says what happened."""
    if isinstance(error, BadInput):
        return Exit.BAD_INPUT, str(error)
    if isinstance(error, ServiceError):
        return _for_service_error(error)
    if isinstance(error, StageTwoFailed):
        return for_status(error.status), str(error)
    if isinstance(error, StreamRefused):
        key_refused = error.code == CLOSE_UNAUTHORIZED
        return (Exit.KEY_REFUSED if key_refused else Exit.REFUSED), str(error)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return Exit.NOT_READY, str(error) or "timed out"
    if isinstance(error, httpx.TimeoutException):
        return Exit.SERVICE_DOWN, f"the service at {url} did not answer in time"
    if isinstance(error, httpx.HTTPError | OSError | websockets.WebSocketException):
        return Exit.SERVICE_DOWN, f"cannot reach the service at {url}: {_first_line(error)}"
    return Exit.UNEXPECTED, f"unexpected {type(error).__name__}: {_first_line(error)}"


def _for_service_error(error: ServiceError) -> tuple[Exit, str]:
    if error.status in (401, 403):
        return Exit.KEY_REFUSED, f"API key refused ({error.status}): {error.body.message}"
    line = f"{error.status} {error.body.error}: {error.body.message}"
    fields = "; ".join(f"{p.field}: {p.message}" for p in error.body.errors)
    if fields and fields not in line:
        line = f"{line} ({fields})"
    return (Exit.REFUSED if error.status < 500 else Exit.SERVICE_DOWN), line


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
