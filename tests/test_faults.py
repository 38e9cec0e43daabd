"""Faults on a real local cluster: every ticket still ends in a clear, truthful state.

Both tests use the ``saturated`` app, whose slow stage two (one photo at a time) keeps
work in flight long enough to kill something under it; ``make bench-faults`` kills
heavy replicas under batches of eight. (An ingress replica's death is covered in
``test_ticket_durability.py``, a client's disconnect in ``test_streaming.py``, one bad
record in a batch in ``test_heavy_isolation.py`` and ``test_batch_endpoint.py``.)
"""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from support import fill_saturated_queue, wait_until_ended

from multistage.api import UNFINISHED
from multistage.local_cluster import kill_replicas

SATURATED = "/saturated"


def _url(ticket: str) -> str:
    return f"{SATURATED}/v1/predictions/{ticket}"


def _wait_for_running(http: httpx.Client, tickets: list[str], timeout_s: float = 30) -> None:
    """Return once a heavy replica holds one of ``tickets``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for ticket in tickets:
            status = http.get(_url(ticket)).json()["status"]
            if status == "running":
                return
            if status == "pending":
                break  # the ones after it are pending too
        time.sleep(0.02)
    raise AssertionError("stage two never started any of the tickets")


def test_heavy_replica_killed_mid_batch_retries_its_tickets(http, serve_url, example):
    backlog = fill_saturated_queue(serve_url, example, count=24)
    _wait_for_running(http, backlog)
    assert kill_replicas("saturated", "HeavyModel")

    # A long-poll across the fault answers within its wait, with a truthful status.
    started = time.monotonic()
    across = http.get(_url(backlog[0]), params={"wait": 2})
    assert time.monotonic() - started < 2 + 3
    assert across.status_code in (200, 202)
    assert across.json()["status"] in ("completed", *UNFINISHED)

    views = [wait_until_ended(http, _url(ticket)).json() for ticket in backlog]
    assert [v["status"] for v in views] == ["completed"] * len(backlog), views
    # The batch the replica died under was tried again, on its replacement.
    assert max(v["attempts"] for v in views) >= 2


def test_ticket_store_death_loses_its_tickets_truthfully_and_service_recovers(
    http, serve_url, example
):
    backlog = fill_saturated_queue(serve_url, example, count=40)
    with httpx.Client(base_url=serve_url, timeout=30) as poller, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poller.get, _url(backlog[-1]), params={"wait": 20})
        time.sleep(1.0)  # the long-poll now waits inside the store
        assert kill_replicas("saturated", "TicketStore")
        killed_at = time.monotonic()
        interrupted = waiting.result()
        answered_after = time.monotonic() - killed_at

    # The waiting read learns at once that its ticket is gone, rather than hanging.
    assert interrupted.status_code == 200
    assert interrupted.json()["status"] == "lost"
    assert answered_after < 2.0

    # Every ticket of the dead store reads lost; until a new store runs, reads say 503.
    deadline = time.monotonic() + 60
    for ticket in backlog[:5]:
        response = http.get(_url(ticket))
        while response.status_code == 503 and time.monotonic() < deadline:
            assert response.headers["retry-after"] == "1"
            response = http.get(_url(ticket))
        assert response.status_code == 200
        assert response.json()["status"] == "lost"
        assert "submit it again" in response.json()["error"]

    # New work is taken again once Serve has replaced the store.
    posted = http.post(f"{SATURATED}/v1/predict", json=example)
    while posted.json()["stage_two"]["status"] != "pending" and time.monotonic() < deadline:
        posted = http.post(f"{SATURATED}/v1/predict", json=example)
    assert posted.status_code == 200
    assert wait_until_ended(http, posted.json()["stage_two"]["url"]).json()["status"] == "completed"
