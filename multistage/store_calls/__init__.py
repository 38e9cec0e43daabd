"""The ingress's calls to the ticket store: few, shared, and never in stage one's way.

- ``submissions``: tickets' submissions, queued after their answers and sent many per call;
- ``watch``: one shared wait call for every ticket this replica's clients wait on;
- ``client``: each call bounded in time, over gRPC by value (``TicketStoreClient``).

What the calls carry is ``multistage/tickets/wire.py``.
"""

from multistage.store_calls.client import TicketStoreClient
from multistage.store_calls.submissions import Refusal, SubmissionQueue
from multistage.store_calls.watch import TicketWatcher

__all__ = ["Refusal", "SubmissionQueue", "TicketStoreClient", "TicketWatcher"]
