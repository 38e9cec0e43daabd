"""What an operator sees: Prometheus metrics that move as requests flow, and JSON logs that
follow one ticket from the HTTP request that issued it through the ticket store to the
heavy model."""

import json
import time
from pathlib import Path

import pytest
from conftest import ROOT, SATURATED_MAX_UNFINISHED
from support import (
    cancel_all,
    dashboard_metric_names,
    post_concurrently,
    wait_for_condition,
    wait_until_ended,
)

from demo.data import generate
from multistage.metrics.scrape import Samples, scrape, total
from multistage_client import paths

DASHBOARD = ROOT / "configs" / "grafana" / "multistage-dashboard.json"


def settled_scrape(metrics_url: str, application: str, still_s: float = 3.0) -> Samples:
    """A scrape taken once ``application``'s own metrics have stopped moving.

    Work from earlier tests (locust's open-loop posts, say) may still be ending, and its
    counts would land in a test's window; ``still_s`` spans the ingress's label flush and
    Ray's metrics report interval, a second each.
    """
    deadline = time.monotonic() + 60
    previous = None
    while True:
        samples = scrape(metrics_url)
        mine = {
            key: value
            for key, value in samples.items()
            if key[0].startswith("ray_multistage_") and ("application", application) in key[1]
        }
        unfinished = total(samples, "ray_multistage_tickets_unfinished", application=application)
        if mine == previous and unfinished == 0:
            return samples
        assert time.monotonic() < deadline, f"{application}'s metrics never settled"
        previous = mine
        time.sleep(still_s)


def grows_by(metrics_url: str, before: Samples, name: str, amount: float, **labels: str):
    """A condition: ``name`` has grown by at least ``amount`` since ``before``."""

    def grown() -> bool:
        return total(scrape(metrics_url), name, **labels) - total(before, name, **labels) >= amount

    return grown


@pytest.fixture
def predict_and_finish(http):
    """Predict ``count`` records; each answer with its ticket's final view as "ended"."""

    def run(count: int) -> list[dict]:
        data = generate(count, seed=7)  # varied records: some answers get revised
        records = [data.record(i) for i in range(count)]
        responses = [http.post(paths.PREDICT, json=record) for record in records]
        answers = []
        for response in responses:
            answer = response.json()
            answer["request_id"] = response.headers[paths.REQUEST_ID_HEADER]
            answer["ended"] = wait_until_ended(http, answer["stage_two"]["url"]).json()
            answers.append(answer)
        return answers

    return run


def test_request_metrics_move_as_requests_flow(metrics_url, predict_and_finish):
    before = settled_scrape(metrics_url, "multistage")
    answers = predict_and_finish(8)
    assert [a["ended"]["status"] for a in answers] == ["completed"] * 8
    revised = sum(a["stage_one"]["label"] != a["ended"]["result"]["label"] for a in answers)

    app = {"application": "multistage"}
    for name, labels in [
        ("ray_multistage_stage_one_latency_ms_count", app),
        ("ray_multistage_stage_two_time_to_result_ms_count", app),
        ("ray_multistage_tickets_finished_total", {**app, "status": "completed"}),
        # Every ticket is compared, revised ("true") or not ("false").
        ("ray_multistage_stage_two_compared_total", app),
    ]:
        wait_for_condition(grows_by(metrics_url, before, name, 8, **labels), timeout=30)
    # Stage two's revisions of stage one's answers, counted exactly.
    after = scrape(metrics_url)
    for flag, count in [("true", revised), ("false", 8 - revised)]:
        labels = {**app, "revised": flag}
        name = "ray_multistage_stage_two_compared_total"
        assert total(after, name, **labels) - total(before, name, **labels) == count


def test_unfinished_gauge_and_stage_two_rejections(http, serve_url, metrics_url, example):
    before = scrape(metrics_url)
    app = {"application": "saturated"}
    batch = {"records": [example] * 64}
    answers = [http.post("/saturated/v1/predict/batch", json=batch).json() for _ in range(2)]
    tickets = [item["ticket"] for answer in answers for item in answer["results"] if item["ticket"]]
    # Refused by the ingress (no ticket), or by the store, exact, after the ticket was issued.
    refused_by_store = [
        t
        for t in tickets
        if http.get(f"/saturated/v1/predictions/{t}").json()["status"] == "rejected"
    ]
    rejected = 128 - len(tickets) + len(refused_by_store)
    try:
        assert len(tickets) - len(refused_by_store) <= SATURATED_MAX_UNFINISHED and rejected > 0

        def unfinished_seen() -> bool:
            return total(scrape(metrics_url), "ray_multistage_tickets_unfinished", **app) > 0

        wait_for_condition(unfinished_seen, timeout=30)
        name = "ray_multistage_admission_rejections_total"
        grown = grows_by(metrics_url, before, name, rejected, reason="stage_two_full", **app)
        wait_for_condition(grown, timeout=30)
    finally:
        cancel_all(http, "/saturated", tickets)

    def drained() -> bool:
        return total(scrape(metrics_url), "ray_multistage_tickets_unfinished", **app) == 0

    wait_for_condition(drained, timeout=30)
    # The ingress last heard of a full store, and admits one record at a time until it hears
    # again: one record, acknowledged, leaves the next module an open gate.
    probe = http.post("/saturated/v1/predict", json=example).json()["ticket"]
    assert (
        wait_until_ended(http, f"/saturated/v1/predictions/{probe}").json()["status"] == "completed"
    )


def test_shed_requests_are_counted_once_each(serve_url, metrics_url, example):
    before = settled_scrape(metrics_url, "overloaded")
    responses = post_concurrently(serve_url, "/overloaded/v1/predict", example, 30)
    shed = sum(r.status_code == 503 for r in responses)
    assert shed > 0
    labels = {"application": "overloaded", "reason": "stage_one_overloaded"}
    name = "ray_multistage_admission_rejections_total"
    wait_for_condition(grows_by(metrics_url, before, name, shed, **labels), timeout=30)
    after = total(scrape(metrics_url), name, **labels)
    assert after - total(before, name, **labels) == shed


def test_every_metric_the_dashboard_charts_is_exported(
    serve_url, metrics_url, example, predict_and_finish
):
    # Ray exports a counter once it has counted something: a rejection, a compared ticket.
    post_concurrently(serve_url, "/overloaded/v1/predict", example, 30)
    predict_and_finish(1)
    wanted = dashboard_metric_names(DASHBOARD)

    def all_exported() -> bool:
        return wanted <= {name for name, _ in scrape(metrics_url)}

    wait_for_condition(all_exported, timeout=30)


def test_logs_follow_a_ticket_from_its_request_to_the_heavy_model(serve_logs, predict_and_finish):
    (answer,) = predict_and_finish(1)
    ticket = answer["ticket"]

    def lines_naming_ticket(deployment: str) -> list[dict]:
        records = [
            json.loads(line)
            for path in Path(serve_logs).glob(f"replica_multistage_{deployment}_*.log")
            for line in path.read_text().splitlines()
            if ticket in line
        ]
        return [r for r in records if r.get("ticket") == ticket or ticket in r.get("tickets", [])]

    def each_deployment_logged() -> bool:
        return all(lines_naming_ticket(d) for d in ("TicketStore", "HeavyModel"))

    wait_for_condition(each_deployment_logged, timeout=30)
    ended = [r for r in lines_naming_ticket("TicketStore") if r["message"] == "ticket finished"]
    assert [r["status"] for r in ended] == ["completed"]
    # The store's line names the HTTP request that issued the ticket (its X-Request-ID).
    assert [r["http_request_id"] for r in ended] == [answer["request_id"]]
