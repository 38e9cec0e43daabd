"""Stage-two submissions leave the ingress after the answers that issued their tickets.

Stage one never waits for the ticket store: a request's ticket is minted and answered
at once, and its submission joins a queue that one sender task drains, many
submissions per call, one call at a time (at most one call every ``every_s``). A call
that fails or times out is sent again until each submission's ``submission_timeout_s``
since its ticket was issued; past that, the store would refuse it and the ticket reads
'lost'. The store's answers keep this replica's admission estimate fresh.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from multistage.admission.gate import AdmissionGate
from multistage.tickets.wire import StoreLoad, Submission
from multistage_client.models import ErrorBody

logger = logging.getLogger("ray.serve")

Send = Callable[[list[Submission]], Awaitable[StoreLoad]]
# How long the store's reported load decides admission: its backlog drains meanwhile.
_LOAD_FRESH_FOR_S = 0.2
_RETRY_BACKOFF_S = (0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Refusal:
    """Why stage two does not take a record: no ticket is issued."""

    status: str  # 'rejected' or 'unavailable', as the API reports it
    error: ErrorBody  # its code also labels the rejection metric


class SubmissionQueue:
    def __init__(
        self,
        send: Send,
        *,
        max_per_call: int,
        max_unsent: int,
        every_s: float,
        submission_timeout_s: float,
        max_unfinished: int,
    ) -> None:
        """Start the sender; call from the replica's event loop."""
        self._send = send
        self._max_per_call = max_per_call
        self._max_unsent = max_unsent
        self._every_s = every_s
        self._submission_timeout_s = submission_timeout_s
        self.gate = AdmissionGate(max_unfinished, fresh_for_s=_LOAD_FRESH_FOR_S)
        self._unsent: deque[tuple[float, Submission]] = deque()  # (issued_at, submission)
        self._in_flight = 0
        self._wake = asyncio.Event()
        # Outside any request's context: no client's disconnect cancels the sender.
        self._sender = contextvars.Context().run(asyncio.create_task, self._send_forever())

    def refusal(self) -> Refusal | None:
        """Whether a new record's stage two is refused, and why; None: issue its ticket."""
        if len(self._unsent) >= self._max_unsent:
            message = (
                f"the ticket store has not taken this replica's last {self._max_unsent} submissions"
            )
            return Refusal("unavailable", ErrorBody(error="stage_two_unavailable", message=message))
        if not self.gate.admits(self.unacknowledged):
            message = "stage two is at its limit of unfinished tickets"
            return Refusal("rejected", ErrorBody(error="stage_two_full", message=message))
        return None

    def put(self, submission: Submission, issued_at: float) -> None:
        self._unsent.append((issued_at, submission))
        self._wake.set()

    @property
    def unacknowledged(self) -> int:
        return len(self._unsent) + self._in_flight

    async def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every submission to be taken; how many were not."""
        deadline = time.monotonic() + timeout_s
        while self.unacknowledged and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        return self.unacknowledged

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = self._take()
            if not batch:
                continue
            self._in_flight = len(batch)
            try:
                load = await self._send([submission for _, submission in batch])
            except Exception:  # noqa: BLE001 - the store is down or slow: keep the work
                logger.warning(
                    "the ticket store did not take %d submissions; sending them again",
                    len(batch),
                    exc_info=failures == 0,
                )
                self._unsent.extendleft(reversed(batch))
                await asyncio.sleep(_RETRY_BACKOFF_S[min(failures, len(_RETRY_BACKOFF_S) - 1)])
                failures += 1
                self._wake.set()
                continue
            finally:
                self._in_flight = 0
            failures = 0
            self.gate.report(load)
            if self._unsent:
                # What queued during that call leaves next, after at most every_s.
                await asyncio.sleep(self._every_s)
                self._wake.set()

    def _take(self) -> list[tuple[float, Submission]]:
        """Up to ``max_per_call`` submissions, oldest first, leaving behind none that the
        store would refuse as too late."""
        oldest_kept = time.time() - self._submission_timeout_s
        late = []
        while self._unsent and self._unsent[0][0] < oldest_kept:
            late.append(self._unsent.popleft()[1].ticket)
        if late:
            logger.warning(
                "%d submissions never reached the ticket store in time; they read 'lost'",
                len(late),
                extra={"tickets": late},
            )
        count = min(self._max_per_call, len(self._unsent))
        return [self._unsent.popleft() for _ in range(count)]
