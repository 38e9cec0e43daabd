"""The ticket store's rules, in plain Python (no Ray):

- ``lifecycle``: ``TicketLifecycle``, every rule of a ticket's life in the store, and the
  parts it is made of:
- ``held``: what it holds of a ticket, and of a stage-two call carrying several;
- ``dispatch``: the stage-two calls that carry the queued tickets;
- ``stage_two``: what it needs of stage two (a call a replica accepts, then answers);
- ``write_behind``: the journal's writes, batched behind the changes they hold;
- ``peers``: the lease, other replicas' tickets taken over, cancels of theirs;
- ``reads``: views of tickets, from memory, the journal or the id alone;
- ``id_history``: what it says of an id it holds no record of;
- ``release``: when finished tickets are let go (TTL, or a full store);
- ``waiters``: shared waits on tickets; ``metrics``: what it counts.

``deployments/ticket_store.py`` binds them to Serve.
"""
