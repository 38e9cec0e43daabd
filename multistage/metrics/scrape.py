"""Reading a node's Prometheus endpoint, as tests and CI checks do: every sample, and the
sum of one metric's samples over the replicas that export it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

# (sample name, its labels) -> value
Samples = dict[tuple[str, frozenset], float]


def scrape(metrics_url: str) -> Samples:
    text = httpx.get(metrics_url, timeout=10).raise_for_status().text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples (over replicas) that carry all of ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, tags), value in samples.items() if n == name and wanted <= tags)
