"""Stage two scales on its backlog in records, down to zero and back up.

An app of this module's own, ``elastic``, runs beside the session's: the slow stage two
(one photo per pass), no heavy replica at first (``min_replicas: 0``), short delays,
and records reported every second. Counts are checked with tolerance: Serve's
autoscaler averages its metrics over a window.
"""

import copy
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
from conftest import deployment_options, use_slow_heavy_model
from ray import serve
from support import post_concurrently, wait_until_ended

from multistage.autoscaling import BUSY_METRIC, RECORDS_METRIC, RecordsBacklogPolicy

PREFIX = "/elastic"
MAX_REPLICAS = 2


@pytest.fixture(scope="module")
def elastic(serve_url, service_config, artifacts, redeploy):
    config = copy.deepcopy(service_config)
    app = copy.deepcopy(config["applications"][0])
    app.update(name="elastic", route_prefix=PREFIX)
    deployment_options(app, "Ingress")["num_replicas"] = 1
    heavy = use_slow_heavy_model(app, artifacts, max_batch_size=1)
    heavy.pop("num_replicas")
    heavy["max_ongoing_requests"] = 2
    heavy["autoscaling_config"] = {
        "min_replicas": 0,
        "initial_replicas": 0,
        "max_replicas": MAX_REPLICAS,
        "upscale_delay_s": 1,
        "downscale_delay_s": 4,
        "downscale_to_zero_delay_s": 4,
        "look_back_period_s": 11,  # must exceed Serve's metrics_interval_s (10)
        "policy": {
            "policy_function": "multistage.autoscaling:RecordsBacklogPolicy",
            "policy_kwargs": {"target_records": 8, "records_per_call": 4},
        },
    }
    app["args"]["ticket_policy"]["records_per_call"] = 4
    app["runtime_env"]["env_vars"]["RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S"] = "1"
    config["applications"].append(app)
    redeploy(config)
    try:
        yield serve_url
    finally:
        redeploy(service_config)


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


def test_stage_two_scales_from_zero_with_its_backlog_and_back(elastic, http, example):
    _wait_for_replicas(lambda n: n == 0, timeout_s=60)
    first = http.post(f"{PREFIX}/v1/predict", json=example).json()
    assert first["stage_two"]["status"] == "pending"
    # No replica yet: the ticket waits, it does not fail.
    assert http.get(first["stage_two"]["url"]).json()["status"] == "pending"

    batch = {"records": [example] * 32}
    responses = post_concurrently(elastic, f"{PREFIX}/v1/predict/batch", batch, 3)
    urls = [item["stage_two"]["url"] for r in responses for item in r.json()["results"]]
    assert len(urls) == 96 and all(urls)
    rising = _wait_for_replicas(lambda n: n >= MAX_REPLICAS, timeout_s=90)

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


@pytest.mark.parametrize(
    ("records", "busy", "queued_calls", "wanted"),
    [
        ({"a": 100, "b": 28}, {"a": 1.0, "b": 1.0}, 0, 4),  # the backlog asks for more
        ({"a": 3, "b": 2}, {"a": 0.5, "b": 0.5}, 0, 2),  # short backlog, busy: keep both
        ({"a": 1, "b": 0}, {"a": 0.2, "b": 0.1}, 0, 1),  # idle enough for one
        ({}, {}, 1, 1),  # no replica yet, a call waits: start one
        ({"a": 0}, {"a": 0.0}, 0, 0),  # nothing to do: down to the minimum
    ],
)
def test_the_policy_wants_replicas_for_the_backlog_and_the_busy_time(
    records, busy, queued_calls, wanted
):
    policy = RecordsBacklogPolicy(target_records=32, records_per_call=16, target_busy=0.7)
    ctx = SimpleNamespace(
        aggregated_metrics={RECORDS_METRIC: records, BUSY_METRIC: busy},
        total_queued_requests=queued_calls,
    )
    assert policy(ctx)[0] == wanted
