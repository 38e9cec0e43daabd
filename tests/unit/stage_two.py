"""Stage two as the ticket lifecycle sees it (``multistage.store.stage_two.StageTwo``),
scripted: each call is answered by what the test says, or held until it says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from multistage.models.records import Record
from multistage.store.stage_two import Outcome, StageTwoReplicaLost
from multistage_client.models import ErrorBody, ModelInfo, Prediction

from .waits import until

MODEL = ModelInfo(name="scripted", version="1")


def predicted(label: str = "ok") -> Prediction:
    return Prediction(label=label, scores={label: 1.0}, model=MODEL, latency_ms=1.0)


@dataclass
class Call:
    """One call made to the scripted stage two."""

    tickets: list[str]
    deadlines: list[float | None]
    accept: asyncio.Event = field(default_factory=asyncio.Event)
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    canceled: bool = False
    lost: bool = False  # its replica dies under it
    failure: Exception | None = None  # it raises this
    answers: list[Outcome] | None = None

    async def accepted(self) -> None:
        await self.accept.wait()
        if self.lost:
            raise StageTwoReplicaLost("the replica died")

    async def outcomes(self) -> Sequence[Outcome]:
        await self.finish.wait()
        if self.lost:
            raise StageTwoReplicaLost("the replica died")
        if self.failure is not None:
            raise self.failure
        return self.answers

    def cancel(self) -> None:
        self.canceled = True


class ScriptedStageTwo:
    """Answers each call with ``answer(call)`` at once (by default: a prediction per
    record); with ``hold=True`` a call waits until the test accepts and finishes it."""

    def __init__(self, answer: Callable[[Call], None] | None = None, hold: bool = False):
        self.calls: list[Call] = []
        self._answer = answer or answer_predictions
        self._hold = hold

    def __call__(
        self, records: list[Record], deadlines: list[float | None], tickets: list[str]
    ) -> Call:
        assert all(record is not None for record in records)
        call = Call(tickets=list(tickets), deadlines=list(deadlines))
        self.calls.append(call)
        if not self._hold:
            release(call, self._answer)
        return call

    async def next_call(self, count: int = 1) -> Call:
        """The ``count``-th call made (1: the first), once it is."""
        await until(lambda: len(self.calls) >= count)
        return self.calls[count - 1]

    @property
    def tickets_run(self) -> list[str]:
        return [ticket for call in self.calls for ticket in call.tickets]


def answer_predictions(call: Call) -> None:
    call.answers = [predicted() for _ in call.tickets]


def answer_errors(error: ErrorBody) -> Callable[[Call], None]:
    def answer(call: Call) -> None:
        call.answers = [error for _ in call.tickets]

    return answer


def release(call: Call, answer: Callable[[Call], None] = answer_predictions) -> None:
    """Let a held call be taken and end with ``answer``."""
    answer(call)
    call.accept.set()
    call.finish.set()
