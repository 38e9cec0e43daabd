"""The client's errors, and the base of every exception the project defines: each crosses
a process boundary intact. (The base lives with the client, which imports nothing of the
server; the server's errors derive it from here.)

Ray pickles an exception that leaves a replica (a call's result, a task's failure).
Python's default rebuilds it by calling its class with ``args``, the message, which
fails for any ``__init__`` whose parameters are not the message, and a result that
cannot be unpickled loses the whole call it travelled in. ``MultistageError`` rebuilds
from ``args`` and attributes without calling ``__init__``.
"""

from __future__ import annotations

from typing import Any

from multistage_client.models import ErrorBody


class MultistageError(Exception):
    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[MultistageError], args: tuple, state: dict) -> MultistageError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def one_line(error: BaseException) -> str:
    """What failed, in one line for a log (a remote traceback's lines joined, cut short)."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:500]


class ServiceError(MultistageError):
    """The service answered with an error (after retries, for 503 and 429)."""

    def __init__(self, status: int, body: ErrorBody, retry_after_s: float | None = None):
        super().__init__(f"{status} {body.error}: {body.message}")
        self.status = status
        self.body = body
        self.retry_after_s = retry_after_s


class StageTwoFailed(MultistageError):
    """Stage two ended without a result (or could not take the request): ``error`` says
    why, by a stable code (``error.error``) and a message."""

    def __init__(self, ticket: str | None, status: str, error: ErrorBody | None):
        why = f"{error.error}: {error.message}" if error else status
        super().__init__(f"stage two for ticket {ticket} ended {status}: {why}")
        self.ticket = ticket
        self.status = status
        self.error = error


class StreamRefused(MultistageError):
    """The service closed the session for good (unauthorized, or its settings refused)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"stream session closed with {code}: {reason}")
        self.code = code
        self.reason = reason
