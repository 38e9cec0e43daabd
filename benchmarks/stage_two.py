"""Stage two under the benchmark: a flood that keeps it saturated, its throughput, its
draining, and its replicas over time."""

from __future__ import annotations

import functools
import json
import threading
import time
from pathlib import Path

import httpx
from ray import serve
from ray.serve.handle import DeploymentHandle

from multistage.models.records import RecordParser
from multistage.models.schema import RecordSchema
from multistage.tickets.ids import TicketIds
from multistage.tickets.wire import Submission
from multistage_client import paths

APP = "multistage"
BACKLOG = 256  # unfinished tickets that keep stage two saturated: 4x what a replica holds


@functools.cache
def store() -> DeploymentHandle:
    """One handle for every poll: each new handle sets up its own routing."""
    return serve.get_deployment_handle("TicketStore", APP)


def unfinished() -> int:
    return store().stats.remote().result().unfinished


def drain(timeout_s: float = 120) -> None:
    """Wait until stage two has no unfinished ticket."""
    deadline = time.monotonic() + timeout_s
    while unfinished() and time.monotonic() < deadline:
        time.sleep(0.5)


class Flood:
    """Keeps at least ``BACKLOG`` tickets unfinished, submitted straight to the ticket store
    (ids signed with the app's secret), topped up rather than flooded: the ingress serves
    only the measured requests, so any slowdown of theirs is stage two's doing."""

    def __init__(self, schema_path: Path, example: dict, secret: bytes) -> None:
        record = RecordParser(RecordSchema.load(schema_path)).parse(json.dumps(example).encode())
        self._record = record
        self._ids = TicketIds(secret)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._top_up_forever, daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        time.sleep(3)  # let the queue fill
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        drain()

    def _top_up_forever(self) -> None:
        while not self._stop.is_set():
            if unfinished() < BACKLOG:
                submissions = [
                    Submission(self._ids.issue(time.time()), self._record, None, "ok")
                    for _ in range(64)
                ]
                store().submit_many.remote(submissions).result()
            else:
                time.sleep(0.05)


def throughput(url: str, example: dict, records: int) -> float:
    """Records/s from the first submission until the store has no unfinished ticket."""
    with httpx.Client(timeout=60) as client:
        started = time.monotonic()
        tickets = []
        for _ in range(records // 64):
            body = {"records": [example] * 64}
            answer = client.post(f"{url}{paths.PREDICT_BATCH}", json=body).raise_for_status()
            tickets += [item["ticket"] for item in answer.json()["results"]]
        time.sleep(0.2)  # the last submissions reach the store
        while unfinished():
            time.sleep(0.2)  # each poll costs CPU that stage two would otherwise get
        elapsed = time.monotonic() - started
        # Reading results is not part of the throughput; checking a sample of them is.
        ended = {_status(client, url, ticket) for ticket in tickets[::16]}
    if None in tickets or ended != {"completed"}:
        raise RuntimeError(f"stage two did not complete every record: {ended}")
    return round(len(tickets) / elapsed, 1)


def _status(client: httpx.Client, url: str, ticket: str, attempts: int = 3) -> str:
    """The ticket's status, reading again after a 503 (the store busy or restarting)."""
    for _ in range(attempts):
        response = client.get(f"{url}{paths.ticket_path(ticket)}")
        if response.status_code != 503:
            break
        time.sleep(1)
    body = response.json()
    return body.get("status") or f"HTTP {response.status_code}: {body}"


class ReplicaSampler:
    """Heavy replicas running and stage two's backlog, sampled every second while the
    ``with`` block runs."""

    def __init__(self) -> None:
        self.timeline: list[dict] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ReplicaSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def replicas(self) -> int:
        return self.timeline[-1]["heavy_replicas"] if self.timeline else 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            status = serve.status().applications[APP].deployments["HeavyModel"]
            states = status.replica_states
            elapsed = round(time.monotonic() - self.started, 1)
            point = {
                "t": elapsed,
                "heavy_replicas": states.get("RUNNING", 0),
                "heavy_starting": states.get("STARTING", 0),
                # Stage two's backlog in records: tickets pending or running in the store.
                "backlog_records": unfinished(),
            }
            self.timeline.append(point)
            time.sleep(1)
