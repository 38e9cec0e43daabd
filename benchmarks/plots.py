"""The benchmark's PNG plots: latency against offered load, and autoscaling over time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from benchmarks.load import LoadResult  # noqa: E402


def latency_vs_load(series: dict[str, list[LoadResult]], bound_ms: float, out: Path) -> None:
    """Stage one's p50 and p99 at each offered load the bound search tried."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, (name, trials) in enumerate(series.items()):
        color = f"C{index}"
        trials = sorted(trials, key=lambda t: t.offered_rps)
        load = [t.offered_rps for t in trials]
        axes.plot(load, [t.p99_ms for t in trials], "o-", color=color, label=f"{name} p99")
        axes.plot(load, [t.p50_ms for t in trials], "x--", color=color, label=f"{name} p50")
    axes.axhline(bound_ms, color="tab:red", linestyle=":", label=f"bound {bound_ms:g} ms")
    axes.set(xlabel="offered load (requests/s, open loop)", ylabel="latency (ms)", yscale="log")
    axes.set_title("Stage one latency vs offered load")
    axes.legend(fontsize=8)
    _save(figure, out)


def autoscaling(runs: dict[str, list[dict]], out: Path) -> None:
    """Heavy replicas, streams, stage two's backlog and time-to-result against time, one
    line per run of the step load (autoscaled, one replica)."""
    figure, (replicas, backlog, latency) = plt.subplots(3, 1, sharex=True, figsize=(7, 8))
    for name, timeline in runs.items():
        seconds = [point["t"] for point in timeline]
        replicas.step(
            seconds, [p["heavy_replicas"] for p in timeline], where="post", label=f"heavy ({name})"
        )
        backlog.plot(seconds, [p.get("backlog_records") for p in timeline], label=name)
        latency.plot(seconds, [p.get("stage_two_p99_ms") for p in timeline], label=name)
    first = next(iter(runs.values()))
    replicas.plot(
        [p["t"] for p in first], [p.get("users") for p in first], color="tab:gray", label="streams"
    )
    replicas.set(ylabel="replicas / streams")
    replicas.legend(fontsize=8)
    backlog.set(ylabel="stage two backlog (records)")
    backlog.legend(fontsize=8)
    latency.set(xlabel="seconds", ylabel="stage two p99, last 10 s (ms)", yscale="log")
    latency.legend(fontsize=8)
    figure.suptitle("Stage two under a step load of stream sessions")
    _save(figure, out)


def _save(figure, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)
