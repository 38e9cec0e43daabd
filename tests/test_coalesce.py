"""CallCoalescer: no wait when calls are free, shared calls under load, a bounded queue."""

import asyncio

import pytest

from multistage.coalesce import Backlogged, CallCoalescer


class Callee:
    """Records each call's items; each call takes until ``release`` is set."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(items)
        await self.release.wait()
        if -1 in items:
            raise ValueError("bad item")
        return [item * 10 for item in items]


def test_items_leave_at_once_while_calls_are_free_then_share_calls():
    async def scenario() -> tuple[list[list[int]], list[int]]:
        callee = Callee()
        calls = CallCoalescer(callee, max_in_flight=2, max_items=3, max_waiting=100)
        futures = [calls.submit(i) for i in range(7)]
        await asyncio.sleep(0)
        assert callee.calls == [[0], [1]]  # the first two went alone, with no wait
        callee.release.set()
        return callee.calls, await asyncio.gather(*futures)

    calls, results = asyncio.run(scenario())
    assert calls == [[0], [1], [2, 3, 4], [5, 6]]
    assert results == [0, 10, 20, 30, 40, 50, 60]


def test_a_failed_call_fails_every_item_it_carried_only():
    async def scenario() -> list:
        callee = Callee()
        calls = CallCoalescer(callee, max_in_flight=1, max_items=8, max_waiting=100)
        futures = [calls.submit(i) for i in (1, 2, -1, 3)]
        callee.release.set()
        return await asyncio.gather(*futures, return_exceptions=True)

    first, *shared = asyncio.run(scenario())
    assert first == 10
    assert all(isinstance(outcome, ValueError) for outcome in shared)


def test_past_max_waiting_submissions_are_refused_and_cancelled_items_never_sent():
    async def scenario() -> list[list[int]]:
        callee = Callee()
        calls = CallCoalescer(callee, max_in_flight=1, max_items=8, max_waiting=2)
        first, dropped, kept = calls.submit(0), calls.submit(1), calls.submit(2)
        with pytest.raises(Backlogged):
            calls.submit(3)
        dropped.cancel()
        callee.release.set()
        await asyncio.gather(first, kept)
        return callee.calls

    assert asyncio.run(scenario()) == [[0], [2]]
