"""Two ticket store replicas sharing a journal on Redis: tickets spread over them, any
replica answers for any ticket, a killed replica's tickets are run by the survivor,
and a restart of Redis loses nothing and never holds stage one up.

An app of this module's own (``replicated``) runs the saturated app's slow stage two
(one photo per call), so work is still queued when something dies under it.
"""

import copy
import json
import time

import pytest
import redis
from conftest import deployment_options, use_slow_heavy_model
from support import concurrently, post_concurrently, wait_until_ended

from ops.local_cluster import kill, replica_actors, replica_ids

APP = "replicated"
PREFIX = f"/{APP}"
LEASE_S = 1.5


@pytest.fixture(scope="module")
def replicated(serve_url, service_config, artifacts, redeploy, redis_url):
    config = copy.deepcopy(service_config)
    app = copy.deepcopy(config["applications"][0])
    app.update(name=APP, route_prefix=PREFIX)
    deployment_options(app, "Ingress")["num_replicas"] = 1
    deployment_options(app, "TicketStore")["num_replicas"] = 2
    use_slow_heavy_model(app, artifacts, max_batch_size=1)
    app["args"]["ticket_policy"]["records_per_call"] = 1
    app["args"]["journal"] = {
        "backend": "redis",
        "url": redis_url,
        "key_prefix": APP,
        "lease_s": LEASE_S,
    }
    config["applications"].append(app)
    redeploy(config)
    try:
        yield redis.Redis.from_url(redis_url)
    finally:
        redeploy(service_config)


def _post(serve_url: str, example: dict, count: int) -> list[str]:
    """The tickets of ``count`` concurrent POSTs; on a busy machine stage one may shed a few
    (503 'overloaded': not what these tests are about), but never most."""
    answers = post_concurrently(serve_url, f"{PREFIX}/v1/predict", example, count)
    shed = [a for a in answers if a.status_code == 503 and a.json()["error"] == "overloaded"]
    assert len(shed) < count / 2, f"{len(shed)} of {count} POSTs were shed"
    return [a.json()["ticket"] for a in answers if a not in shed]


def _store_replicas() -> list[str]:
    return replica_ids(APP, "TicketStore")


def _ended(http, tickets: list[str]) -> list[dict]:
    return [wait_until_ended(http, f"{PREFIX}/v1/predictions/{t}").json() for t in tickets]


def test_tickets_spread_over_the_replicas_and_any_replica_reads_any(
    replicated, http, serve_url, example
):
    # In waves: the ingress sends each wave's submissions in a call of its own.
    tickets = []
    for _ in range(10):
        tickets += _post(serve_url, example, 3)
        time.sleep(0.1)
    # Each replica wrote the tickets it took as its own: both took some.
    entries = replicated.mget([f"{APP}:t:{ticket}" for ticket in tickets])
    owners = {json.loads(entry)["owner"] for entry in entries}
    assert owners == set(_store_replicas()), owners
    views = _ended(http, tickets)
    assert [v["status"] for v in views] == ["completed"] * len(tickets), views
    # Read again, through whichever replica each read lands on: the same answer.
    for view in views:
        for _ in range(3):
            assert http.get(f"{PREFIX}/v1/predictions/{view['ticket']}").json() == view


def test_a_killed_store_replica_loses_nothing_the_survivor_runs_its_tickets(
    replicated, http, serve_url, example
):
    tickets = _post(serve_url, example, 30)
    time.sleep(0.5)  # their submissions acknowledged: the victim's tickets are its own
    # The replica holding the most unfinished tickets (its id is its journal owner name).
    held = {replica: replicated.scard(f"{APP}:u:{replica}") for replica in _store_replicas()}
    victim = max(held, key=held.get)
    assert held[victim] > 0, held
    assert kill([replica_actors(APP, "TicketStore")[_store_replicas().index(victim)]])
    views = _ended(http, tickets)
    assert [v["status"] for v in views] == ["completed"] * len(tickets), views
    # Its tickets were run by the survivor: the journal holds none as the victim's.
    assert replicated.scard(f"{APP}:u:{victim}") == 0


def test_a_redis_restart_holds_up_neither_stage_one_nor_any_ticket(
    replicated, http, serve_url, example, redis_server
):
    redis_server.stop()
    try:
        during = []
        for _ in range(5):
            started = time.monotonic()
            answer = http.post(f"{PREFIX}/v1/predict", json=example)
            during.append((time.monotonic() - started, answer.json()))
        time.sleep(2)
    finally:
        redis_server.start()
    assert max(seconds for seconds, _ in during) < 1.0, during
    assert [a["stage_two"]["status"] for _, a in during] == ["pending"] * 5
    views = _ended(http, [a["ticket"] for _, a in during])
    assert [v["status"] for v in views] == ["completed"] * len(during), views


def test_cancel_reaches_a_ticket_whichever_replica_holds_it(replicated, http, serve_url, example):
    tickets = _post(serve_url, example, 80)  # seconds of work behind one heavy replica
    # The newest of the longer queue. A cancel lands on either replica (on the other, it
    # goes through the journal): of those that cancel, some land on the other all but
    # surely. Serve's router need not take calls in order, so some may have run already.
    longest = sorted(_longest_queue(replicated), key=lambda entry: entry["submitted_at"])
    targets = [entry["ticket"] for entry in longest[-20:]]
    answers = concurrently(serve_url, "DELETE", [f"{PREFIX}/v1/predictions/{t}" for t in targets])
    ends = [v["status"] for v in _ended(http, targets)]
    for answer, end in zip(answers, ends, strict=True):
        # A cancel answered is a cancel kept; one refused had ended otherwise.
        expected = {200: "canceled", 202: "canceled", 409: "completed"}
        assert expected.get(answer.status_code) == end, (answer.status_code, answer.text, end)
    assert ends.count("canceled") >= 10, ends
    rest = [t for t in tickets if t not in targets]
    assert all(v["status"] == "completed" for v in _ended(http, rest))


def _longest_queue(journal: redis.Redis, timeout_s: float = 10) -> list[dict]:
    """The unfinished entries of the store replica holding the most, once it holds 20: the
    ingress sends its submissions after answering, so the journal holds them a moment
    after the POSTs were answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        queues = [_unfinished_entries(journal, replica) for replica in _store_replicas()]
        longest = max(queues, key=len)
        if len(longest) >= 20 or time.monotonic() > deadline:
            return longest
        time.sleep(0.05)


def _unfinished_entries(journal: redis.Redis, replica: str) -> list[dict]:
    """The journal's entries of the tickets ``replica`` holds unfinished."""
    tickets = [t.decode() for t in journal.smembers(f"{APP}:u:{replica}")]
    values = journal.mget([f"{APP}:t:{t}" for t in tickets]) if tickets else []
    return [json.loads(v) for v in values if v is not None]
