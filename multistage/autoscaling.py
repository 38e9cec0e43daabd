"""Stage two scales on its backlog in records, not on calls.

The ticket store sends stage two many records per call (``ticket_policy.records_per_call``),
so Serve's default policy, which counts ongoing calls per replica, sees one busy call
where sixteen records wait. Here each heavy replica reports the records it holds, queued
for its batches or running (``HeavyModel.record_autoscaling_stats``), and calls that no
replica has taken yet (queued at the ticket store's handle, as while no replica runs)
count as full calls. The policy asks for as many replicas as it takes for each to hold
``target_records``, and for at least as many as keep each busy (running forward passes)
no more than ``target_busy`` of the time: once enough replicas keep the backlog short,
the backlog alone would say one fewer would do, and the replicas would come and go.

Serve wraps the policy with the deployment's ``min_replicas``/``max_replicas``, its
upscale and downscale delays and scaling factors, and starts a first replica at once
when calls wait and none runs (``min_replicas: 0``). Serve pickles this module by value
into its controller: keep it free of imports beyond the standard library.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.serve.config import AutoscalingContext

# What a heavy replica reports: records it holds, queued for its batches or running; and
# the share of the time since its last report it spent running batches.
RECORDS_METRIC = "records"
BUSY_METRIC = "busy"


class RecordsBacklogPolicy:
    """``autoscaling_config.policy.policy_function`` for the heavy deployment; its
    ``policy_kwargs`` are this constructor's arguments."""

    def __init__(
        self, target_records: float = 32, records_per_call: int = 16, target_busy: float = 0.7
    ) -> None:
        if target_records <= 0 or records_per_call < 1 or not 0 < target_busy <= 1:
            raise ValueError(
                "target_records must be positive, records_per_call at least 1, "
                "target_busy in (0, 1]"
            )
        self.target_records = target_records
        self.records_per_call = records_per_call
        self.target_busy = target_busy

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        backlog = self.backlog(ctx)
        busy = sum(((ctx.aggregated_metrics or {}).get(BUSY_METRIC) or {}).values())
        wanted = max(
            math.ceil(backlog / self.target_records), math.ceil(busy / self.target_busy - 1e-9)
        )
        return wanted, {"backlog_records": backlog, "busy_replicas": busy}

    def backlog(self, ctx: AutoscalingContext) -> float:
        """Records held by the replicas, plus calls queued at handles as full calls."""
        held = sum(((ctx.aggregated_metrics or {}).get(RECORDS_METRIC) or {}).values())
        return held + (ctx.total_queued_requests or 0) * self.records_per_call
