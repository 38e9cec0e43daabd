"""Latency-bounded throughput: the most load held while stage one's p99 stays under a bound."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.load import LoadResult


@dataclass(frozen=True)
class Bound:
    p99_ms: float = 100.0
    max_failure_ratio: float = 0.01
    # Every answered record's ticket followed to a completed stage two (not for baselines
    # that issue no tickets), but for this share; for streams, within this time-to-result
    # p99 too.
    follows_tickets: bool = False
    max_without_stage_two: float = 0.0
    stage_two_p99_ms: float | None = None
    min_achieved: float = 0.95  # of the offered rate: else the load generator fell behind

    def holds(self, result: LoadResult) -> bool:
        return (
            result.p99_ms <= self.p99_ms
            and result.failure_ratio < self.max_failure_ratio
            and result.achieved_rps >= self.min_achieved * result.offered_rps
            and (not self.follows_tickets or self._stage_two_completed(result))
            and (
                self.stage_two_p99_ms is None
                or (
                    result.stage_two_p99_ms is not None
                    and result.stage_two_p99_ms <= self.stage_two_p99_ms
                )
            )
        )

    def _stage_two_completed(self, result: LoadResult) -> bool:
        missing = result.stage_one_answers - result.stage_two_completed
        return result.stage_one_answers > 0 and (
            missing <= self.max_without_stage_two * result.stage_one_answers
        )


def highest_held(
    trial: Callable[[int], LoadResult], bound: Bound, start: int = 1, limit: int = 256
) -> tuple[int, list[LoadResult]]:
    """The most users (each a fixed rate) for which ``bound`` holds, and every trial run.

    Doubles the users until the bound breaks, then bisects between the last count that
    held and the first that broke. 0 if even ``start`` users break it.
    """
    trials: list[LoadResult] = []

    def held(users: int) -> bool:
        result = trial(users)
        trials.append(result)
        verdict = "held" if bound.holds(result) else "broke"
        print(
            f"    {users:4d} users: p50 {result.p50_ms:g} ms, p99 {result.p99_ms:g} ms, "
            f"{result.achieved_rps:g}/{result.offered_rps:g} req/s, "
            f"stage two p99 {result.stage_two_p99_ms} ms -> {verdict}",
            flush=True,
        )
        return verdict == "held"

    good, bad = 0, start
    while bad <= limit and held(bad):
        good, bad = bad, bad * 2
    while bad - good > max(1, good // 10):  # to within 10%: finer is below the noise
        middle = (good + bad) // 2
        if held(middle):
            good = middle
        else:
            bad = middle
    return good, trials
