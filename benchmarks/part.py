"""What a benchmark part is: a measure run against the service, and its report rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# A report row: what is measured, the figures, the target they are held against.
Row = tuple[str, str, str]


@dataclass(frozen=True)
class Service:
    """The service a part measures: one cluster's app and its baselines, deployed."""

    url: str
    config: dict  # the Serve config deployed; a part that changes it puts it back
    example: dict  # one valid request body
    requests: int  # sequential requests per target
    trial_seconds: float  # each locust trial
    secret: bytes  # the ticket ids' signing secret, for floods of submissions
    bare: str | None = None  # bare Starlette's URL, where the cluster has it beside it


@dataclass(frozen=True)
class Part:
    """One part of the benchmark.

    ``measure`` returns JSON-able figures; ``rows`` turns them into report rows, given
    each cluster's figures for this part (by cluster name), so a row can set one cluster
    beside another. ``clusters`` names the clusters the part runs on.
    """

    name: str
    measure: Callable[[Service], dict]
    rows: Callable[[dict[str, dict]], list[Row]]
    clusters: tuple[str, ...] = ("haproxy",)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def p50_p99(figures: dict) -> str:
    return f"{figures['p50']} / {figures['p99']} ms"
