"""The ingress's shared calls to the ticket store, with a fake store in the test's event
loop: submissions leave after the answer and share calls, admission follows the store's
reports, and clients waiting on tickets share waits."""

import asyncio
import time

import numpy as np

from multistage.admission.gate import AdmissionGate
from multistage.admission.load_shedding import LoopBacklog
from multistage.models.records import Record
from multistage.store_calls.submissions import SubmissionQueue
from multistage.store_calls.watch import MAX_CALLS, TicketWatcher
from multistage.tickets.views import utc
from multistage.tickets.wire import StoreLoad, Submission, WaitReply
from multistage_client.models import TicketView

RECORD = Record(features=np.zeros(3, dtype=np.float32), image=np.zeros((2, 2, 1), np.uint8))


def _submission(ticket: str) -> Submission:
    return Submission(ticket, RECORD, deadline=None, stage_one_label="ok")


class FakeStore:
    """Takes submissions (after ``release``), failing the first ``failures`` calls."""

    def __init__(self, max_unfinished: int = 100, failures: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.unfinished = 0
        self.max_unfinished = max_unfinished
        self.failures = failures

    async def submit(self, submissions: list[Submission]) -> StoreLoad:
        await self.release.wait()
        self.calls.append([s.ticket for s in submissions])
        if len(self.calls) <= self.failures:
            raise ConnectionError("the store is restarting")
        self.unfinished += len(submissions)
        return StoreLoad(self.unfinished, self.max_unfinished)


def _queue(store: FakeStore, **overrides) -> SubmissionQueue:
    options = dict(
        max_per_call=3, max_unsent=100, every_s=0.0, submission_timeout_s=10, max_unfinished=100
    )
    return SubmissionQueue(store.submit, **(options | overrides))


def test_submissions_leave_at_once_when_idle_then_share_calls():
    async def scenario() -> list[list[str]]:
        store = FakeStore()
        queue = _queue(store)
        queue.put(_submission("a"), time.time())
        await asyncio.sleep(0)  # the sender takes "a" alone: nothing else was waiting
        for ticket in "bcdef":
            queue.put(_submission(ticket), time.time())
        store.release.set()
        while queue.unacknowledged:
            await asyncio.sleep(0.001)
        return store.calls

    assert asyncio.run(scenario()) == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_failed_call_is_sent_again_and_late_submissions_are_dropped():
    async def scenario() -> tuple[list[list[str]], int]:
        store = FakeStore(failures=1)
        queue = _queue(store, submission_timeout_s=5)
        queue.put(_submission("late"), time.time() - 60)  # issued a minute ago: too late
        queue.put(_submission("kept"), time.time())
        store.release.set()
        while queue.unacknowledged:
            await asyncio.sleep(0.01)
        return store.calls, store.unfinished

    calls, taken = asyncio.run(scenario())
    assert calls == [["kept"], ["kept"]]  # the first call failed; "late" never left
    assert taken == 1


def test_admission_counts_what_the_store_has_not_yet_acknowledged():
    async def scenario() -> list[str | None]:
        store = FakeStore(max_unfinished=4)
        queue = _queue(store, max_unfinished=4)
        outcomes = []
        for i in range(6):  # before any report: the store is taken to be empty
            refusal = queue.refusal()
            outcomes.append(refusal and refusal.status)
            if refusal is None:
                queue.put(_submission(str(i)), time.time())
        store.release.set()
        while queue.unacknowledged:
            await asyncio.sleep(0.001)
        refusal = queue.refusal()  # reported full: rejected, with no call
        outcomes.append(refusal and refusal.status)
        return outcomes

    assert asyncio.run(scenario()) == [None] * 4 + ["rejected"] * 3


def test_past_max_unsent_stage_two_is_unavailable():
    async def scenario() -> str | None:
        queue = _queue(FakeStore(), max_unsent=2)  # the store never answers
        for ticket in "abc":
            queue.put(_submission(ticket), time.time())
        refusal = queue.refusal()
        return refusal and refusal.status

    assert asyncio.run(scenario()) == "unavailable"


def test_a_stale_full_report_admits_one_record_at_a_time():
    gate = AdmissionGate(max_unfinished=10, fresh_for_s=0.05)
    gate.report(StoreLoad(unfinished=10, max_unfinished=10))
    assert not gate.admits(unacknowledged=0)
    time.sleep(0.06)
    assert gate.admits(unacknowledged=0)
    assert not gate.admits(unacknowledged=1)


class FakeWaits:
    """Answers shared waits: each call returns the ended tickets among those asked for."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.ended: dict[str, TicketView] = {}
        self.changed = asyncio.Event()

    def end(self, ticket: str) -> None:
        self.ended[ticket] = TicketView(ticket=ticket, status="completed", submitted_at=utc(0))
        self.changed.set()

    async def wait(self, ticket_ids: list[str], wait_s: float) -> WaitReply:
        self.calls.append(sorted(ticket_ids))
        deadline = time.monotonic() + wait_s
        while not any(t in self.ended for t in ticket_ids) and time.monotonic() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        views = [self.ended[t] for t in ticket_ids if t in self.ended]
        return WaitReply(ended=views, load=StoreLoad(0, 10))


def test_waiting_clients_share_waits_and_each_gets_its_ticket():
    async def scenario() -> tuple[list, list[list[str]]]:
        store = FakeWaits()
        watcher = TicketWatcher(store.wait, every_s=0.05, call_wait_s=5, on_load=lambda _: None)
        first = asyncio.create_task(watcher.ended("a", timeout_s=5))
        await asyncio.sleep(0.01)  # the first wait left at once, with "a" alone
        waiters = [asyncio.create_task(watcher.ended(t, timeout_s=5)) for t in "bbc"]
        await asyncio.sleep(0.1)  # "b" and "c" joined one call, after every_s
        store.end("b")
        await asyncio.sleep(0.01)
        store.end("a")
        store.end("c")
        views = await asyncio.gather(first, *waiters)
        return [v.ticket for v in views], store.calls

    tickets, calls = asyncio.run(scenario())
    assert tickets == ["a", "b", "b", "c"]
    assert calls[:2] == [["a"], ["b", "c"]]
    assert ["c"] in calls  # after "b" ended, "c" rode the next call


def test_a_wait_that_times_out_answers_none():
    async def scenario() -> TicketView | None:
        watcher = TicketWatcher(FakeWaits().wait, every_s=0, call_wait_s=5, on_load=print)
        return await watcher.ended("never", timeout_s=0.05)

    assert asyncio.run(scenario()) is None


def test_a_backlogged_loop_sheds_and_an_idle_one_does_not():
    async def scenario() -> tuple[bool, bool]:
        backlog = LoopBacklog(shed_after_s=0.02)
        await asyncio.sleep(0.03)
        idle = backlog.overloaded()
        time.sleep(0.05)  # the loop busy with work, as behind a queue of requests
        return idle, backlog.overloaded()

    assert asyncio.run(scenario()) == (False, True)


def test_waits_past_the_cap_join_the_next_call_that_returns():
    async def scenario() -> tuple[list[str], int]:
        store = FakeWaits()
        watcher = TicketWatcher(store.wait, every_s=0, call_wait_s=0.2, on_load=lambda _: None)
        tickets = [f"t{i}" for i in range(MAX_CALLS + 4)]
        waiters = []
        for ticket in tickets:  # each alone: the calls in flight reach the cap
            waiters.append(asyncio.create_task(watcher.ended(ticket, timeout_s=5)))
            await asyncio.sleep(0.001)
        calls_at_cap = len(store.calls)
        for ticket in tickets:
            store.end(ticket)
        views = await asyncio.gather(*waiters)
        return [v.ticket for v in views], calls_at_cap

    tickets, calls_at_cap = asyncio.run(scenario())
    assert calls_at_cap == MAX_CALLS
    assert tickets == [f"t{i}" for i in range(MAX_CALLS + 4)]  # the last four too
