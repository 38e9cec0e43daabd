"""The ticket store's rules, in plain Python (no Ray):

- ``lifecycle``: ``TicketLifecycle``, every rule of a ticket's life in the store;
- ``stage_two``: what it needs of stage two (a call a replica accepts, then answers);
- ``id_history``: what it says of an id it holds no record of.

``deployments/ticket_store.py`` binds them to Serve.
"""
