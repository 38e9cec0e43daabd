"""Stage one never waits on stage two: not its compute, its queue, nor replica assignment.

The ``saturated`` app's heavy deployment takes one photo at a time and each takes
tens of milliseconds, so a burst of submissions leaves seconds of queued stage-two
work. Stage one must come back while that queue is still full.
"""

import time

from support import post_concurrently

BURST = 60
PREFIX = "/saturated"


def _burst(base_url: str, example: dict) -> list[str]:
    responses = post_concurrently(base_url, f"{PREFIX}/v1/predict", example, BURST)
    assert [r.status_code for r in responses] == [200] * BURST
    # Every submission got a ticket: none gave up waiting on the full heavy queue.
    assert [r.json()["stage_two"]["status"] for r in responses] == ["pending"] * BURST
    return [r.json()["ticket"] for r in responses]


def test_stage_one_returns_while_stage_two_is_saturated(http, serve_url, example):
    tickets = _burst(serve_url, example)

    durations = []
    for _ in range(5):
        started = time.perf_counter()
        response = http.post(f"{PREFIX}/v1/predict", json=example)
        durations.append(time.perf_counter() - started)
        assert response.status_code == 200
        assert response.json()["stage_two"]["status"] == "pending"
    # The queue was still full while stage one answered...
    backlog = http.get(f"{PREFIX}/v1/predictions/{tickets[-1]}")
    assert backlog.status_code == 202, "stage two drained: the test did not saturate it"
    # ...and stage one's answers did not wait for it (the backlog is seconds long).
    assert max(durations) < 1.0, f"stage one took {max(durations):.2f}s under saturation"

    last = http.get(f"{PREFIX}/v1/predictions/{tickets[-1]}", params={"wait": 30})
    assert last.json()["status"] == "completed"
