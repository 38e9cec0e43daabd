"""Stage two: the PyTorch model on the heavy modalities the schema declares (a photo, text
fields, or both) and the tabular fields, dynamically batched.

Runs on a GPU when the replica has one (mixed precision there), else on CPU. Batch
size and wait come from ``user_config``, so they change at runtime without a redeploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
import ray
import torch
from pydantic import BaseModel, Field
from ray import serve

from multistage.autoscaling import BUSY_METRIC, RECORDS_METRIC
from multistage.models.io import heavy_inputs, load_heavy_module, prediction_from_probabilities
from multistage.models.records import Record
from multistage.models.schema import RecordSchema
from multistage.tickets import errors as ticket_errors
from multistage.tickets.deadline import has_passed
from multistage_client.errors import MultistageError
from multistage_client.models import ErrorBody, ModelInfo, Prediction

Precision = Literal["auto", "fp32", "fp16", "bf16"]
logger = logging.getLogger("ray.serve")


# A record's outcome: its prediction, or why it has none. Plain data, never an exception:
# an outcome crosses to the ticket store in a list with its call-mates' (one that could not
# be unpickled there would lose them all), and a ticket's error is shown to its client.
Outcome = Prediction | ErrorBody


class StageTwoError(MultistageError):
    """Stage two gave a record no prediction (``predict``, one record per call)."""

    def __init__(self, error: ErrorBody) -> None:
        super().__init__(f"{error.error}: {error.message}")
        self.error = error


class BatchingConfig(BaseModel):
    """The heavy deployment's ``user_config``."""

    max_batch_size: int = Field(16, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.5},
    # Calls, not records: the ticket store sends many records per call.
    max_ongoing_requests=4,
    user_config=BatchingConfig().model_dump(),
)
class HeavyModel:
    def __init__(
        self,
        factory: str,
        weights: str,
        factory_kwargs: dict,
        info: ModelInfo,
        schema: RecordSchema,
        precision: Precision = "auto",
        yield_cpu: bool = True,
    ) -> None:
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self._device.type == "cpu":
            torch.set_num_threads(_cpu_threads())
        module = load_heavy_module(factory, weights, schema, factory_kwargs)
        self._module = module.to(self._device)
        self._autocast_dtype = _autocast_dtype(self._device, precision)
        self._info = info
        self._schema = schema
        self._records_held = 0  # queued for this replica's batches or running
        self._busy_s = 0.0  # running batches, since the last autoscaling report
        self._reported_at = time.monotonic()
        # The first forward pass pays for lazy initialisation; pay it before serving.
        # A module that breaks the input contract fails here, not on the first request.
        warmup = self._predict_batch([_blank_record(schema)])[0]
        if isinstance(warmup, ErrorBody):
            raise StageTwoError(warmup)
        if yield_cpu and self._device.type == "cpu":
            _lowest_cpu_priority()

    def reconfigure(self, user_config: dict) -> None:
        config = BatchingConfig.model_validate(user_config)
        self._predict_batched.set_max_batch_size(config.max_batch_size)
        self._predict_batched.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    def record_autoscaling_stats(self) -> dict[str, float]:
        """The backlog this replica holds, in records, and how busy it was: what stage two
        scales on (``multistage/autoscaling.py``), where calls carry many records each."""
        now = time.monotonic()
        busy = min(1.0, self._busy_s / max(now - self._reported_at, 1e-3))
        self._busy_s, self._reported_at = 0.0, now
        return {RECORDS_METRIC: self._records_held, BUSY_METRIC: busy}

    async def predict(self, record: Record, deadline: float | None = None) -> Prediction:
        """Stage two for one record; raises ``StageTwoError`` rather than start late, or
        when the model fails on it."""
        (outcome,) = await self._held([record], [deadline])
        if isinstance(outcome, ErrorBody):
            raise StageTwoError(outcome)
        return outcome

    async def predict_many(
        self,
        records: list[Record],
        deadlines: list[float | None],
        tickets: list[str] | None = None,
    ) -> list[Outcome]:
        """Stage two for many records in one call: each outcome a prediction or its failure.

        The records join the replica's batches one by one, with those of other calls.
        ``tickets`` name the records in this replica's logs.
        """
        started = time.perf_counter()
        outcomes = await self._held(records, deadlines)
        logger.info(
            "stage two call done",
            extra={
                "tickets": tickets,
                "failed": sum(isinstance(o, ErrorBody) for o in outcomes),
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        return outcomes

    async def _held(self, records: list[Record], deadlines: list[float | None]) -> list[Outcome]:
        """Each record through the batches, counted as held until its outcome is in."""
        self._records_held += len(records)
        try:
            return list(await asyncio.gather(*map(self._predict_batched, records, deadlines)))
        finally:
            self._records_held -= len(records)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def _predict_batched(
        self, records: list[Record], deadlines: list[float | None]
    ) -> list[Outcome]:
        # A record may have waited in this replica's queue past its deadline: skip it.
        live = [i for i, deadline in enumerate(deadlines) if not has_passed(deadline)]
        outcomes: list[Outcome] = [ticket_errors.deadline_passed() for _ in records]
        if live:
            # In a thread: torch releases the GIL, so the loop keeps filling the next batch.
            started = time.monotonic()
            predictions = await asyncio.to_thread(
                self._predict_isolating_failures, [records[i] for i in live]
            )
            self._busy_s += time.monotonic() - started
            for i, prediction in zip(live, predictions, strict=True):
                outcomes[i] = prediction
        return outcomes

    def _predict_isolating_failures(self, records: list[Record]) -> list[Outcome]:
        try:
            return self._predict_batch(records)
        except Exception:  # noqa: BLE001 - the failure belongs to its record(s)
            if len(records) == 1:
                logger.warning("stage two's model failed on a record", exc_info=True)
                return [ticket_errors.model_failed()]
            # One bad record must not fail its batch-mates: run each on its own.
            return [self._predict_isolating_failures([r])[0] for r in records]

    @torch.inference_mode()
    def _predict_batch(self, records: list[Record]) -> list[Outcome]:
        started = time.perf_counter()
        features = np.stack([r.features for r in records])
        images = np.stack([r.image for r in records]) if self._schema.image else None
        texts = {t.field: np.stack([r.texts[t.field] for r in records]) for t in self._schema.texts}
        inputs = heavy_inputs(features, images, texts, self._schema, self._device)
        with self._autocast():
            logits = self._module(**inputs)
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return [
            prediction_from_probabilities(
                p,
                self._schema.classes,
                self._info,
                elapsed_ms,
                batch_size=len(records),
                modalities=self._schema.modalities,
            )
            if np.isfinite(p).all()
            else ticket_errors.non_finite_output()
            for p in probabilities
        ]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._device.type, dtype=self._autocast_dtype)


def _blank_record(schema: RecordSchema) -> Record:
    spec = schema.image
    image = np.zeros((spec.height, spec.width, spec.channels), np.uint8) if spec else None
    return Record(
        features=np.zeros(len(schema.fields), dtype=np.float32),
        image=image,
        texts={t.field: np.zeros(t.max_tokens, dtype=np.int64) for t in schema.texts},
    )


def _cpu_threads() -> int:
    """As many torch threads as CPUs Ray gave this replica (at least one)."""
    assigned = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, round(assigned))


def _lowest_cpu_priority() -> None:
    """Every thread of this process, and those it starts later, at nice 19.

    Sharing CPUs with stage one, stage two should take what stage one leaves. Nice 19,
    not SCHED_IDLE: at idle priority stage two's throughput fell by more than half on
    2 cores. Linux keeps niceness per thread, and new threads inherit their creator's.
    """
    threads = Path("/proc/self/task")  # Linux; elsewhere, id 0: the whole process
    for thread_id in [int(t.name) for t in threads.iterdir()] if threads.is_dir() else [0]:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, thread_id, 19)


def _autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """Mixed precision on GPU ("auto": bf16 where supported, else fp16); fp32 on CPU."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
