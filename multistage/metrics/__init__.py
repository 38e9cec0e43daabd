"""The service's own Prometheus metrics, and reading a node's metrics back.

- ``exported``: what the ingress and the ticket store export (through Ray's metrics);
- ``scrape``: reading a node's Prometheus endpoint, as tests and CI checks do.
"""

from multistage.metrics.exported import IngressMetrics, TicketMetrics
from multistage.metrics.scrape import scrape, total

__all__ = ["IngressMetrics", "TicketMetrics", "scrape", "total"]
