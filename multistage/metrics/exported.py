"""The service's own Prometheus metrics, exported by Ray next to Serve's built-in ones.

Each node's metrics agent serves them (``ray start --metrics-export-port``). Ray
prefixes every name with ``ray_`` and counters with a ``_total`` suffix, so
``multistage_tickets_finished`` is scraped as ``ray_multistage_tickets_finished_total``.
Serve adds ``application``, ``deployment`` and ``replica`` tags to each.

Made inside a replica (the tags come from its context), once per replica.
"""

from __future__ import annotations

from typing import Literal

from ray.serve.metrics import Counter, Gauge, Histogram

STAGE_ONE_LATENCY = "multistage_stage_one_latency_ms"
STAGE_TWO_TIME_TO_RESULT = "multistage_stage_two_time_to_result_ms"
TICKETS_FINISHED = "multistage_tickets_finished"
TICKETS_UNFINISHED = "multistage_tickets_unfinished"
ADMISSION_REJECTIONS = "multistage_admission_rejections"
STAGE_TWO_COMPARED = "multistage_stage_two_compared"

# Why a request's work was refused: stage one shed it (503), the ticket store was at its
# limit of unfinished tickets ('rejected'), or did not answer in time ('unavailable').
RejectionReason = Literal[
    "stage_one_overloaded", "stage_two_full", "stage_two_unavailable", "session_full", "tenant_full"
]

_STAGE_ONE_BUCKETS_MS = [1, 2, 5, 10, 20, 35, 50, 75, 100, 200, 500, 1000, 2000, 5000]
_STAGE_TWO_BUCKETS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000]


def _rejections() -> Counter:
    counter = Counter(
        ADMISSION_REJECTIONS,
        description="Requests whose work was refused, by reason and tenant.",
        tag_keys=("reason", "tenant"),
    )
    counter.set_default_tags({"tenant": ""})  # stage one's shedding knows no tenant yet
    return counter


class IngressMetrics:
    def __init__(self) -> None:
        self._stage_one_latency = Histogram(
            STAGE_ONE_LATENCY,
            description="Time from accepting a predict request to stage one's answer (ms).",
            boundaries=_STAGE_ONE_BUCKETS_MS,
        )
        self._rejections = _rejections()

    def stage_one_answered(self, latency_ms: float) -> None:
        self._stage_one_latency.observe(latency_ms)

    def rejected(self, reason: RejectionReason, tenant: str = "") -> None:
        self._rejections.inc(tags={"reason": reason, "tenant": tenant})


class TicketMetrics:
    def __init__(self) -> None:
        self._time_to_result = Histogram(
            STAGE_TWO_TIME_TO_RESULT,
            description="Time from a ticket's submission to stage two's result (ms).",
            boundaries=_STAGE_TWO_BUCKETS_MS,
        )
        self._finished = Counter(
            TICKETS_FINISHED,
            description="Tickets that ended, by terminal status.",
            tag_keys=("status",),
        )
        self._unfinished = Gauge(
            TICKETS_UNFINISHED, description="Tickets pending or running in the ticket store."
        )
        self._rejections = _rejections()
        self._compared = Counter(
            STAGE_TWO_COMPARED,
            description="Tickets whose stage-two label was compared with stage one's, by "
            "whether stage two revised it ('true') or agreed ('false').",
            tag_keys=("revised",),
        )

    def finished(self, status: str, time_to_result_ms: float | None) -> None:
        self._finished.inc(tags={"status": status})
        if time_to_result_ms is not None:
            self._time_to_result.observe(time_to_result_ms)

    def unfinished(self, count: int) -> None:
        self._unfinished.set(count)

    def rejected(self, reason: RejectionReason, tenant: str) -> None:
        self._rejections.inc(tags={"reason": reason, "tenant": tenant})

    def compared(self, stage_one_label: str, stage_two_label: str) -> None:
        revised = "true" if stage_one_label != stage_two_label else "false"
        self._compared.inc(tags={"revised": revised})
