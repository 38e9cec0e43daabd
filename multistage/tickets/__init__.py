"""Tickets, as both the ingress and the store know them.

- ``ids``: a ticket's id, signed, carrying when it was issued and to which tenant;
- ``views``: what a read of a ticket answers, from the store's record, its journal entry,
  or the id alone (on its way, lost, released);
- ``errors``: why a ticket ended without a result, by code;
- ``deadline``: a request's deadline for stage two;
- ``wire``: what the ingress and the store send each other about tickets (in the cluster
  only: nothing a client sends travels this way).
"""
