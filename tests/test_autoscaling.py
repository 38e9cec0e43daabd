"""Stage two scales on its backlog in records, down to zero and back up.

The session's ``elastic`` app (see conftest) runs the slow stage two (one photo per pass)
on no heavy replica until work comes (``min_replicas: 0``), with short delays, and its
replicas report their records every second. Counts are checked with tolerance: Serve's
autoscaler averages its metrics over a window.
"""

import time
from datetime import datetime

from conftest import ELASTIC_MAX_REPLICAS
from ray import serve
from support import post_concurrently, wait_until_ended

PREFIX = "/elastic"


def _heavy_replicas() -> int:
    status = serve.status().applications["elastic"].deployments["HeavyModel"]
    return status.replica_states.get("RUNNING", 0)


def _wait_for_replicas(accept, timeout_s: float) -> list[int]:
    """Heavy replica counts sampled until ``accept(count)``; fails after ``timeout_s``."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while not seen or not accept(seen[-1]):
        assert time.monotonic() < deadline, f"replica counts seen: {seen}"
        time.sleep(0.5)
        seen.append(_heavy_replicas())
    return seen


def test_stage_two_scales_from_zero_with_its_backlog_and_back(serve_url, http, example):
    _wait_for_replicas(lambda n: n == 0, timeout_s=60)
    first = http.post(f"{PREFIX}/v1/predict", json=example).json()
    assert first["stage_two"]["status"] == "pending"
    # No replica yet: the ticket waits, it does not fail.
    assert http.get(first["stage_two"]["url"]).json()["status"] == "pending"

    batch = {"records": [example] * 32}
    responses = post_concurrently(serve_url, f"{PREFIX}/v1/predict/batch", batch, 3)
    urls = [item["stage_two"]["url"] for r in responses for item in r.json()["results"]]
    assert len(urls) == 96 and all(urls)
    rising = _wait_for_replicas(lambda n: n >= ELASTIC_MAX_REPLICAS, timeout_s=90)

    view = wait_until_ended(http, first["stage_two"]["url"]).json()
    assert view["status"] == "completed", view
    cold_start = datetime.fromisoformat(view["finished_at"]) - datetime.fromisoformat(
        view["submitted_at"]
    )
    for url in urls:
        assert wait_until_ended(http, url).json()["status"] == "completed"
    falling = _wait_for_replicas(lambda n: n == 0, timeout_s=90)
    print(
        f"first record's stage two from zero replicas in {cold_start.total_seconds():.1f} s; "
        f"heavy replicas while the backlog grew: {rising}; after it drained: {falling}"
    )
