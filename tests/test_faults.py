"""Faults on a real local cluster: every ticket still ends in a clear, truthful state.

Both tests use the ``saturated`` app, whose slow stage two (one photo at a time) keeps
work in flight long enough to kill something under it; ``make bench-faults`` kills
heavy replicas under batches of eight. (An ingress replica's death is covered in
``test_ticket_durability.py``, a client's disconnect in ``test_streaming.py``, one bad
record in a batch in ``test_heavy_isolation.py`` and ``test_batch_endpoint.py``.)
"""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
from ray import serve
from support import fill_saturated_queue, wait_for_condition, wait_until_ended

from multistage_client.models import UNFINISHED
from ops.local_cluster import kill_replicas

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


def test_ticket_store_death_loses_no_ticket_with_the_sqlite_journal(http, serve_url, example):
    finished = http.post(f"{SATURATED}/v1/predict", json=example).json()["ticket"]
    before = wait_until_ended(http, _url(finished)).json()
    backlog = fill_saturated_queue(serve_url, example, count=40)
    store = serve.get_deployment_handle("TicketStore", app_name="saturated")
    wait_for_condition(lambda: store.stats.remote().result().held >= len(backlog))
    with httpx.Client(base_url=serve_url, timeout=90) as poller, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(poller.get, _url(backlog[-1]), params={"wait": 30})
        time.sleep(1.0)  # the long-poll now waits in the ingress's shared wait
        assert kill_replicas("saturated", "TicketStore")
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        # While no store runs, stage one answers at once, and issues tickets.
        during = []
        for _ in range(5):
            started = time.monotonic()
            answer = http.post(f"{SATURATED}/v1/predict", json=example)
            during.append((time.monotonic() - started, answer.json()))
            time.sleep(0.2)
        interrupted = waiting.result()
        answered_after = time.monotonic() - killed_at

    assert max(seconds for seconds, _ in during) < 1.0, during
    assert [a["stage_two"]["status"] for _, a in during] == ["pending"] * 5
    # The waiting read answers within its wait, truthfully: the ticket is not lost.
    assert answered_after < 30 + 5
    assert interrupted.status_code in (200, 202, 503), interrupted.text
    if interrupted.status_code != 503:
        assert interrupted.json()["status"] in ("completed", *UNFINISHED)

    # The result written before the kill reads the same after it.
    assert _ended_view(http, finished) == before
    # Every ticket the dead store held was run again by its replacement, and those
    # issued while it was down were sent to it again: none lost.
    ended = [_ended_view(http, t) for t in backlog + [a["ticket"] for _, a in during]]
    assert [v["status"] for v in ended] == ["completed"] * len(ended), ended
    # Those it had not ended started again on its replacement.
    started_after = [v for v in ended[: len(backlog)] if _at(v["started_at"]) > killed_wall]
    assert started_after, ended
    # Later modules post to this app: leave its stage two with nothing unfinished.
    wait_for_condition(lambda: store.stats.remote().result().unfinished == 0, timeout=60)


def _at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _ended_view(http: httpx.Client, ticket: str, timeout_s: float = 90) -> dict:
    """The ticket's view once it has ended, reading through 503s while no store runs."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = http.get(_url(ticket), params={"wait": 5})
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
        ended = response.status_code != 503 and response.json()["status"] not in UNFINISHED
        if ended or time.monotonic() > deadline:
            return response.json()
