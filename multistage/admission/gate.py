"""Admission control at the ingress, decided with no call: does stage two take one more?

The ticket store reports its load with every answer to this replica's shared calls.
Between reports, this replica counts what it has admitted and not yet seen acknowledged,
so its estimate errs only by what other ingress replicas admitted meanwhile; the store,
which sees every submission, is exact, and refuses the overshoot (those tickets read
'rejected'). Before any report, the store is taken to be empty. A report of a full
store grows stale (its backlog drains meanwhile), and with the gate closed no
submission leaves to bring a new one: a stale "full" admits one record at a time, whose
answer is the fresh report.
"""

from __future__ import annotations

import time

from multistage.tickets.wire import StoreLoad


class AdmissionGate:
    def __init__(self, max_unfinished: int, fresh_for_s: float) -> None:
        self._fresh_for_s = fresh_for_s
        self._room = max_unfinished  # no report yet: an empty store
        self._reported_at = float("-inf")

    def admits(self, unacknowledged: int) -> bool:
        """Whether stage two has room, given the submissions the store has not yet counted."""
        if self._room <= 0 and time.monotonic() - self._reported_at > self._fresh_for_s:
            return unacknowledged == 0
        return self._room - unacknowledged > 0

    def report(self, load: StoreLoad) -> None:
        """The store's load, counting every submission it has acknowledged to this replica."""
        self._room = load.room
        self._reported_at = time.monotonic()
