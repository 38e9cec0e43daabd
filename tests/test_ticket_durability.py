"""Tickets belong to the service, not to the ingress replica that issued them."""

import time

import httpx
import ray
from ray import serve
from support import wait_for_condition, wait_for_two_ingress_replicas

INGRESS_REPLICA = "X-Ingress-Replica"


def _issue_tickets(http: httpx.Client, example: dict, count: int) -> dict[str, list[str]]:
    """POST until both ingress replicas have issued tickets: {replica id: [ticket, ...]}."""
    issued: dict[str, list[str]] = {}
    for _ in range(count):
        response = http.post("/v1/predict", json=example)
        assert response.status_code == 200
        issued.setdefault(response.headers[INGRESS_REPLICA], []).append(response.json()["ticket"])
    assert len(issued) == 2, f"expected two ingress replicas to answer, got {list(issued)}"
    return issued


def test_ticket_issued_by_one_replica_resolves_through_the_other(http, example):
    issued = _issue_tickets(http, example, count=30)
    crossed = 0
    for issuer, tickets in issued.items():
        for ticket in tickets:
            response = http.get(f"/v1/predictions/{ticket}", params={"wait": 20})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "completed"
            crossed += response.headers[INGRESS_REPLICA] != issuer
    assert crossed > 0, "no ticket was fetched through a replica other than its issuer"


def test_tickets_outlive_the_ingress_replica_that_issued_them(http, example):
    store = serve.get_deployment_handle("TicketStore", app_name="multistage")
    held_before = store.stats.remote().result().held
    issued = _issue_tickets(http, example, count=30)
    # Submissions leave after the answers: a replica killed outright loses those it had not
    # yet sent (the last few milliseconds' worth). Kill it once the store has them all.
    wait_for_condition(lambda: store.stats.remote().result().held >= held_before + 30)
    victim, tickets = next(iter(issued.items()))
    actor = ray.get_actor(f"SERVE_REPLICA::multistage#Ingress#{victim}", namespace="serve")
    ray.kill(actor, no_restart=True)

    # Until Serve notices the death, a request routed to the dead replica may fail.
    deadline = time.monotonic() + 60
    unresolved = set(tickets)
    while unresolved and time.monotonic() < deadline:
        for ticket in list(unresolved):
            try:
                response = http.get(f"/v1/predictions/{ticket}", params={"wait": 5})
            except httpx.TransportError:
                continue
            # ray.kill takes effect a moment later: a read the victim still answered
            # proves nothing, so it is read again.
            if response.status_code == 200 and response.headers[INGRESS_REPLICA] != victim:
                assert response.json()["status"] == "completed"
                unresolved.discard(ticket)
    assert not unresolved, f"{len(unresolved)} of {len(tickets)} tickets never resolved"
    wait_for_two_ingress_replicas(http)
