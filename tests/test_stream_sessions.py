"""Stream sessions (``GET /v1/streams``, a WebSocket) on the live service behind HAProxy."""

import asyncio
import contextlib
import json
import random
import threading
import time

import pytest
import ray
import websockets
from conftest import API_KEY, GUARDED_IDLE_S
from support import cancel_all, fill_saturated_queue
from websockets.sync.client import connect

from multistage.models.records import MAX_JSON_DEPTH
from multistage_client import AsyncClient, paths
from multistage_client.models import UNFINISHED
from multistage_client.protocol import CLOSE_FORBIDDEN_ORIGIN, CLOSE_IDLE, CLOSE_UNAUTHORIZED
from ops.local_cluster import kill

TERMINAL_WAIT_S = 60


def _url(serve_url: str, prefix: str = "", **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{serve_url.replace('http', 'ws', 1)}{prefix}{paths.STREAMS}?{query}"


@contextlib.contextmanager
def _open(serve_url: str, prefix: str = "", headers: dict | None = None, **params):
    """A connected session and its ``ready`` message."""
    with connect(_url(serve_url, prefix, **params), additional_headers=headers or {}) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready["type"] == "ready", ready
        yield ws, ready


def _send(ws, example: dict, seq, **changes) -> None:
    ws.send(json.dumps({**example, **changes, "seq": seq}))


def _until_answered(ws, seqs: set) -> dict:
    """Messages until every seq in ``seqs`` has had a terminal message or an error:
    {seq: [message, ...]} in arrival order."""
    by_seq: dict = {}
    open_seqs = set(seqs)
    deadline = time.monotonic() + TERMINAL_WAIT_S
    while open_seqs:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        by_seq.setdefault(message["seq"], []).append(message)
        if message["type"] != "stage1":
            open_seqs.discard(message["seq"])
    return by_seq


def test_each_record_gets_stage1_then_its_terminal_message_in_many_sessions(serve_url, example):
    def session(results: list, index: int) -> None:
        seqs = random.Random(index).sample(range(10_000), 12)  # interleaved, not in order
        with _open(serve_url) as (ws, _):
            for seq in seqs:
                _send(ws, example, seq)
            stage_ones, by_seq = [], {}
            while len(by_seq) < len(seqs) or any(len(m) < 2 for m in by_seq.values()):
                message = json.loads(ws.recv(timeout=TERMINAL_WAIT_S))
                by_seq.setdefault(message["seq"], []).append(message)
                if message["type"] == "stage1":
                    stage_ones.append(message["seq"])
        results.append((seqs, stage_ones, by_seq))

    results: list = []
    threads = [threading.Thread(target=session, args=(results, i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4
    for seqs, stage_ones, by_seq in results:
        assert stage_ones == seqs  # stage one in the order the records were sent
        for seq in seqs:
            first, second = by_seq[seq]  # exactly two messages per record
            assert first["type"] == "stage1" and first["stage_two"]["status"] == "pending"
            assert second["type"] == "stage2", second
            assert second["ticket"] == first["ticket"]
            assert second["stage_two"]["status"] == "completed"
            assert second["stage_two"]["result"]["label"] in ("ok", "defect")


def test_bad_messages_get_errors_and_the_session_goes_on(serve_url, example):
    with _open(serve_url) as (ws, ready):
        ws.send("not json")
        ws.send(b"\x00binary")
        ws.send("x" * (ready["max_message_bytes"] + 1))
        ws.send(json.dumps([1, 2]))
        ws.send(json.dumps(example))  # no seq
        _send(ws, example, 7, shift="graveyard")
        _send(ws, example, "t-8", type="subscribe")
        ws.send(json.dumps({"type": "follow", "seq": 9, "ticket": "never-issued"}))
        errors = [json.loads(ws.recv(timeout=10)) for _ in range(8)]
        _send(ws, example, 10)
        answered = _until_answered(ws, {10})

    assert all(e["type"] == "error" for e in errors), errors
    found = [(e["error"], e["errors"][0]["field"], e["seq"]) for e in errors]
    assert found == [
        ("malformed_json", "message", None),
        ("malformed_message", "message", None),
        ("message_too_large", "message", None),
        ("malformed_json", "message", None),
        ("invalid_record", "seq", None),
        ("invalid_record", "shift", 7),
        ("invalid_message", "type", "t-8"),
        ("unknown_ticket", "ticket", 9),
    ]
    assert [m["type"] for m in answered[10]] == ["stage1", "stage2"]


def test_past_its_bound_a_record_gets_stage_one_and_a_rejected_stage_two(serve_url, example, http):
    with _open(serve_url, "/saturated", max_unfinished=2, stage_two_deadline_s=60) as (ws, ready):
        assert ready["max_unfinished"] == 2
        for seq in range(4):
            _send(ws, example, seq)
        answered = _until_answered(ws, {0, 1, 2, 3})
    for seq in (2, 3):
        first, second = answered[seq]
        assert first["type"] == "stage1" and first["ticket"] is None
        assert first["stage_one"]["label"] in ("ok", "defect")
        assert second["type"] == "rejected"
        assert second["stage_two"]["error"]["error"] == "session_full"
        assert "max_unfinished" in second["stage_two"]["error"]["message"]
    assert [m["type"] for m in answered[0]] == ["stage1", "stage2"]


def test_work_past_the_sessions_deadline_expires_unrun(serve_url, example, http):
    backlog = fill_saturated_queue(serve_url, example)
    try:
        with _open(serve_url, "/saturated", stage_two_deadline_s=0.05) as (ws, ready):
            assert ready["stage_two_deadline_s"] == 0.05
            _send(ws, example, 1)
            (first, second) = _until_answered(ws, {1})[1]
        assert second["type"] == "expired", second
        assert second["stage_two"]["started_at"] is None
    finally:
        cancel_all(http, "/saturated", backlog)


def test_a_closed_session_cancels_only_its_unstarted_work(serve_url, example, http):
    with _open(serve_url, "/saturated", stage_two_deadline_s=120) as (ws, _):
        for seq in range(12):
            _send(ws, example, seq)
        messages = [json.loads(ws.recv(timeout=30)) for _ in range(12)]
        # A record stage one shed (an 'overloaded' error) has no ticket to cancel.
        tickets = [m["ticket"] for m in messages if m["type"] == "stage1"]
        # Close once a heavy replica has started one of them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if http.get(f"/saturated/v1/predictions/{tickets[0]}").json()["started_at"]:
                break
            time.sleep(0.05)
    views = {}
    deadline = time.monotonic() + TERMINAL_WAIT_S
    while len(views) < len(tickets) and time.monotonic() < deadline:
        for ticket in set(tickets) - set(views):
            view = http.get(f"/saturated/v1/predictions/{ticket}", params={"wait": 5}).json()
            if view["status"] not in UNFINISHED:
                views[ticket] = view
    statuses = {v["status"] for v in views.values()}
    assert len(views) == len(tickets) and statuses == {"completed", "canceled"}, views
    for view in views.values():
        started = view["started_at"] is not None
        assert started == (view["status"] == "completed"), view
        if view["status"] == "canceled":
            assert view["error"]["error"] == "canceled"
            assert "stream session closed" in view["error"]["message"]


def test_sessions_authenticate_by_header_or_first_message(serve_url, example):
    with connect(_url(serve_url, "/guarded")) as ws, pytest.raises(websockets.ConnectionClosed):
        ws.send(json.dumps({"type": "auth", "api_key": "wrong"}))
        ws.recv(timeout=10)
    assert ws.close_code == CLOSE_UNAUTHORIZED

    with _open(serve_url, "/guarded", headers={"Authorization": f"Bearer {API_KEY}"}) as (ws, _):
        _send(ws, example, 1)
        assert [m["type"] for m in _until_answered(ws, {1})[1]] == ["stage1", "stage2"]

    with connect(_url(serve_url, "/guarded")) as ws:
        ws.send(json.dumps({"type": "auth", "api_key": API_KEY}))
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"


@pytest.mark.parametrize(
    "frame, problem",
    [
        ("[" * 1000 + "]" * 1000, f"nests deeper than {MAX_JSON_DEPTH} levels"),
        ('{"seq": "a \\ud800"}', "no UTF-8 can carry"),
    ],
    ids=["nested 1,000 deep", "lone surrogate in seq"],
)
def test_a_frame_that_is_no_json_text_gets_its_reason_and_the_session_goes_on(
    serve_url, example, frame, problem
):
    with _open(serve_url) as (ws, _):
        ws.send(frame)
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["error"]) == ("error", "malformed_json")
        assert problem in error["errors"][0]["message"]
        _send(ws, example, 1)
        assert [m["type"] for m in _until_answered(ws, {1})[1]] == ["stage1", "stage2"]


@pytest.mark.parametrize(
    "first_message",
    ["[" * 1000 + "]" * 1000, '{"type": "auth", "api_key": "\\ud800"}', "not json"],
    ids=["nested 1,000 deep", "lone surrogate in the key", "not json"],
)
def test_a_bad_auth_message_closes_4401_with_a_reason(serve_url, first_message):
    with connect(_url(serve_url, "/guarded")) as ws, pytest.raises(websockets.ConnectionClosed):
        ws.send(first_message)
        ws.recv(timeout=10)
    assert (ws.close_code, ws.close_reason) == (CLOSE_UNAUTHORIZED, "a valid API key is required")


def test_the_key_is_checked_before_the_settings(serve_url):
    # No invalid_parameters message for a client not yet known: only the close.
    with (
        connect(_url(serve_url, "/guarded", frame_interval_s=-1)) as ws,
        pytest.raises(websockets.ConnectionClosed),
    ):
        ws.recv(timeout=10)
    assert ws.close_code == CLOSE_UNAUTHORIZED


def test_a_web_page_of_another_origin_is_refused_and_the_services_own_admitted(serve_url):
    with (
        connect(_url(serve_url), origin="https://elsewhere.example") as ws,
        pytest.raises(websockets.ConnectionClosed),
    ):
        ws.recv(timeout=10)
    assert ws.close_code == CLOSE_FORBIDDEN_ORIGIN
    assert "https://elsewhere.example" in ws.close_reason
    with _open(serve_url, headers={"Origin": serve_url}) as (_, ready):
        assert ready["type"] == "ready"


def test_an_idle_session_is_closed_with_a_code_and_reason(serve_url):
    with _open(serve_url, "/guarded", headers={"X-API-Key": API_KEY}) as (ws, ready):
        assert ready["idle_timeout_s"] == GUARDED_IDLE_S
        started = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=GUARDED_IDLE_S + 10)
    # The server's clock starts a moment before the client's (at its ready message).
    assert GUARDED_IDLE_S - 0.5 <= time.monotonic() - started < GUARDED_IDLE_S + 5
    assert ws.close_code == CLOSE_IDLE and "no message" in ws.close_reason


def test_bad_session_settings_are_refused_with_the_parameter_named(serve_url):
    with connect(_url(serve_url, frame_interval_s=-1)) as ws:
        error = json.loads(ws.recv(timeout=10))
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=10)
    assert error["error"] == "invalid_parameters"
    assert error["errors"][0]["field"] == "frame_interval_s"
    assert ws.close_code == 1008


def test_the_client_resumes_when_its_ingress_replica_is_killed(serve_url, example):
    """Every record still gets both answers: records whose stage one never came are sent
    again, tickets whose stage two never came are followed on the new connection.

    On the guarded app: its one ingress replica dies, the client's reconnects are refused
    until Serve has replaced it, then the session resumes there."""
    count, kill_after = 40, 10

    async def run() -> tuple[dict, int, str | None]:
        async def records():
            for index in range(count):
                yield {**example, "seq": index}
                await asyncio.sleep(0.05)

        by_seq: dict = {}
        victim = None
        async with AsyncClient(f"{serve_url}/guarded", api_key=API_KEY) as client:
            session = client.stream(records(), max_reconnects=10)
            async for message in session:
                by_seq.setdefault(message.seq, []).append(message.type)
                if victim is None and len(by_seq) == kill_after:
                    victim = session.ready.replica
                    actor = f"SERVE_REPLICA::guarded#Ingress#{victim}"
                    kill([ray.get_actor(actor, namespace="serve")])
            return by_seq, session.connections, victim

    by_seq, connections, victim = asyncio.run(run())
    assert victim is not None and connections >= 2
    assert sorted(by_seq) == list(range(count))
    for seq, kinds in by_seq.items():
        # lost: its submission died with the replica; expired: it completed while the
        # client was away, and the guarded app keeps results for 2 s only.
        assert "stage1" in kinds and kinds[-1] in ("stage2", "lost", "expired"), (seq, kinds)
