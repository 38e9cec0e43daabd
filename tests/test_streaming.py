"""Server-Sent Events over real HTTP through the Serve proxy."""

import time

import httpx
from httpx_sse import connect_sse
from support import fill_saturated_queue

from multistage_client.models import PredictResponse, TicketView


def _events(http: httpx.Client, method: str, url: str, **kwargs) -> list[tuple[str, str]]:
    with connect_sse(http, method, url, **kwargs) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(event.event, event.data) for event in source.iter_sse()]


def test_stream_sends_stage1_then_stage2_then_closes(http, example):
    events = _events(http, "POST", "/v1/predict/stream", json=example)
    assert [name for name, _ in events] == ["stage1", "stage2"]
    first = PredictResponse.model_validate_json(events[0][1])
    assert first.stage_two.status == "pending"
    assert first.stage_one.label in ("ok", "defect")
    second = TicketView.model_validate_json(events[1][1])
    assert second.ticket == first.ticket
    assert second.status == "completed"
    # The streamed result is the stored one.
    stored = http.get(f"/v1/predictions/{first.ticket}").json()
    assert stored["result"] == second.result.model_dump(mode="json")


def test_events_for_an_existing_ticket(http, example):
    ticket = http.post("/v1/predict", json=example).json()["ticket"]
    events = _events(http, "GET", f"/v1/predictions/{ticket}/events")
    assert [name for name, _ in events] == ["stage2"]
    assert TicketView.model_validate_json(events[0][1]).ticket == ticket


def test_events_for_an_unknown_ticket_is_json_404(http):
    response = http.get("/v1/predictions/never-issued/events")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_ticket"


def test_stream_refuses_bad_input_before_streaming(http, example):
    response = http.post("/v1/predict/stream", json={**example, "shift": "graveyard"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "shift"


def test_stream_reports_a_ticket_that_did_not_complete(http, example):
    # Its deadline passes before stage two can start: it ends expired, with its reason.
    url = "/v1/predict/stream?deadline_s=0.000001"
    events = _events(http, "POST", url, json=example)
    assert [name for name, _ in events] == ["stage1", "expired"]
    assert TicketView.model_validate_json(events[1][1]).error.error == "deadline_passed"


def _disconnect_after_first_heartbeat(http: httpx.Client, example: dict) -> str:
    """Open a stream, leave after its first heartbeat; returns the stream's ticket."""
    lines = []
    with http.stream("POST", "/saturated/v1/predict/stream", json=example) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line == ": heartbeat":
                break  # stage two is still pending: disconnect now
    assert lines[0] == "event: stage1"
    assert lines[-1] == ": heartbeat"
    return PredictResponse.model_validate_json(lines[1].removeprefix("data: ")).ticket


def test_heartbeats_then_disconnect_leaves_the_ticket_fetchable(http, serve_url, example):
    # Several disconnects: cancellation reaching stage two was intermittent when it existed.
    # Each stream queues behind a fresh backlog, so stage two is still pending at its heartbeat.
    tickets = []
    for _ in range(3):
        fill_saturated_queue(serve_url, example, count=20)
        tickets.append(_disconnect_after_first_heartbeat(http, example))

    # The saturated queue can take a while to drain on a busy machine: wait it out.
    deadline = time.monotonic() + 90
    for ticket in tickets:
        url = f"/saturated/v1/predictions/{ticket}"
        view = http.get(url, params={"wait": 25}).json()
        while view["status"] in ("pending", "running") and time.monotonic() < deadline:
            view = http.get(url, params={"wait": 25}).json()
        assert view["status"] == "completed", view
