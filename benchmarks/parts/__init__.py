"""The benchmark's parts, one module each, in the order ``make bench`` runs them.

Each module holds a ``PART``: what it measures against a deployed service, the report
rows it makes of its figures, and the clusters it runs on (``benchmarks/part.py``). The runner
(``benchmarks/runner.py``) saves each part's figures the moment it ends.
"""

from benchmarks.part import Part, Row, Service
from benchmarks.parts import (
    autoscaling,
    batching,
    calls,
    cpu,
    fast_path,
    isolation,
    journal,
    sequential,
    streams,
    throughput,
)

PARTS: dict[str, Part] = {
    module.PART.name: module.PART
    for module in (
        sequential,
        cpu,
        fast_path,
        calls,
        isolation,
        batching,
        throughput,
        streams,
        autoscaling,
        journal,
    )
}

__all__ = ["PARTS", "Part", "Row", "Service"]
