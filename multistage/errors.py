"""The base of every exception the project defines: each crosses a process boundary intact.

Ray pickles an exception that leaves a replica (a call's result, a task's failure).
Python's default rebuilds it by calling its class with ``args``, the message, which
fails for any ``__init__`` whose parameters are not the message, and a result that
cannot be unpickled loses the whole call it travelled in. ``MultistageError`` rebuilds
from ``args`` and attributes without calling ``__init__``.
"""

from __future__ import annotations

from typing import Any


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
