"""Fault injection: steady load on the service while one fault strikes; every ticket's end.

    python -m benchmarks.fault_injection [--seconds 12] [--out results/fault_injection.json]

Starts a local Ray cluster of its own (no dashboard; Serve's HAProxy ingress, as
``make run``) and a Redis server of its own (``make redis``), and deploys
``configs/local.yaml`` with two ingress replicas (so one can die while the other
serves) and a longer batch wait (see BATCH_WAIT_S), using the models in ``artifacts/``
(``make models``). Each fault names the ticket journal it runs with (SQLite, as
configured, unless it says otherwise) and how many ticket store replicas.

For each fault in turn, batches of records are posted at a steady rate and, like
interactive clients, each poster follows its tickets at once (long-poll). A third of
the way in, the fault strikes just after a batch was posted, while its records wait in
stage two. Reported per fault: tickets submitted, completed, failed (by reason),
canceled, expired, lost and unresolved (still unfinished a minute later: must be zero);
tickets retried; submissions refused or answered without a ticket; when the first
ticket submitted after the fault completed; results read again at the end that differ
from what their follower read (a result must outlive the store that held it); and how
long the POSTs took (stage one's answer), whose tail shows what a fault costs stage one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from benchmarks.bench_config import local_config
from benchmarks.report import percentiles, write_results
from benchmarks.serve_process import wait_healthy
from multistage.models.schema import RecordSchema
from multistage_client import paths
from multistage_client.models import UNFINISHED
from ops import haproxy
from ops.local_cluster import (
    deploy_config,
    free_port,
    kill,
    local_cluster,
    replica_actors,
    replica_ids,
)
from ops.redis_server import RedisServer

APP = "multistage"
BATCH = 8  # records per POST: the heavy model gets real batches to die under
RATE = 4  # POSTs per second
FOLLOW_TIMEOUT_S = 60
# The demo model answers a batch in milliseconds: a longer batch wait keeps records in
# the heavy replica long enough to kill it under them, STRIKE_AFTER_S after their POST.
BATCH_WAIT_S = 0.25
STRIKE_AFTER_S = 0.1
REREADS_AT_ONCE = 32
REDIS_DOWN_S = 3.0  # how long the journal's server stays down
BAD_RECORD = {"temperature_c": 1e308}  # finite JSON past the field's bound: refused alone


@dataclass(frozen=True)
class Fault:
    victims: Callable[[], list] = list  # the replica actors to kill
    journal: str = "sqlite"  # the ticket journal's backend
    store_replicas: int = 1
    restarts_redis: bool = False  # the fault: the journal's Redis server stops, then starts
    bad_records: bool = False  # one record per POST that is refused (422 in the batch)
    disconnecting_clients: bool = False  # streams closed right after the ticket arrives
    routed_by_haproxy: bool = False  # the victim is an ingress replica HAProxy routes to


FAULTS = {
    "heavy replica killed mid-batch": Fault(lambda: replica_actors(APP, "HeavyModel")),
    "ingress replica killed": Fault(
        lambda: replica_actors(APP, "Ingress")[:1], routed_by_haproxy=True
    ),
    "ticket store replica killed (SQLite)": Fault(lambda: replica_actors(APP, "TicketStore")),
    "ticket store replica killed (memory journal)": Fault(
        lambda: replica_actors(APP, "TicketStore"), journal="memory"
    ),
    "ticket store replica killed (Redis)": Fault(
        lambda: replica_actors(APP, "TicketStore"), journal="redis"
    ),
    "one of 2 store replicas killed (Redis)": Fault(
        lambda: replica_actors(APP, "TicketStore")[:1], journal="redis", store_replicas=2
    ),
    "journal's Redis restarted (2 store replicas)": Fault(
        journal="redis", store_replicas=2, restarts_redis=True
    ),
    "invalid record in every batch": Fault(bad_records=True),
    "clients disconnect after the ticket": Fault(disconnecting_clients=True),
}


@dataclass
class Run:
    fault_at: float = 0.0  # wall-clock time of the fault
    views: list[dict] = field(default_factory=list)  # each ticket's final view
    refused: Counter = field(default_factory=Counter)  # POSTs that failed, by error
    without_ticket: Counter = field(default_factory=Counter)  # by error code
    failed_reads: Counter = field(default_factory=Counter)  # ticket reads that got no answer
    post_ms: list[float] = field(default_factory=list)  # how long each POST took (stage one)
    haproxy_stopped_routing_s: float | None = None  # after the kill, to the killed replica
    changed_on_reread: int = 0  # completed tickets that read differently at the end
    changes: list[dict] = field(default_factory=list)  # a few of them: first and second read


async def post_batch(client: httpx.AsyncClient, records: list[dict], run: Run) -> list[str]:
    response = await client.post(paths.PREDICT_BATCH, json={"records": records})
    response.raise_for_status()
    tickets = []
    for item in response.json()["results"]:
        if item["ticket"] is None:
            refusal = item["error"] or item["stage_two"]["error"]
            run.without_ticket[refusal["error"]] += 1
        else:
            tickets.append(item["ticket"])
    return tickets


async def _stream_and_leave(client: httpx.AsyncClient, records: list[dict], run: Run) -> list:
    (record,) = records
    async with aconnect_sse(client, "POST", paths.PREDICT_STREAM, json=record) as events:
        events.response.raise_for_status()
        async for event in events.aiter_sse():
            return [event.json()["ticket"]]  # stage1 is in: leave before stage two
    return []


async def follow(client: httpx.AsyncClient, ticket: str, run: Run) -> dict:
    """The ticket's final view, long-polling on through failed reads (a dead replica's,
    the store's restart), as a retrying client would."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    view = {"status": "unresolved"}
    while time.monotonic() < deadline:
        try:
            response = await client.get(paths.ticket_path(ticket), params={"wait": 10})
        except httpx.TransportError as error:
            run.failed_reads[type(error).__name__] += 1
            continue
        if response.status_code >= 500:
            run.failed_reads[f"{response.status_code} {response.text[:60]}"] += 1
            await asyncio.sleep(0.1)
            continue
        view = response.json()
        if view["status"] not in UNFINISHED:
            return view
    return view


async def _haproxy_stops_routing(run_dir: Path, replica_id: str, run: Run) -> None:
    """When HAProxy marks the killed ingress replica's server anything but UP (or drops it)."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT_S
    while time.monotonic() < deadline:
        states = await asyncio.to_thread(haproxy.server_states, run_dir)
        mine = [state for name, state in states.items() if name.endswith(replica_id)]
        if not mine or mine[0] != "UP":
            run.haproxy_stopped_routing_s = round(time.time() - run.fault_at, 2)
            return
        await asyncio.sleep(0.05)


def _strike(fault: Fault, victims: list, redis: RedisServer) -> None:
    if fault.restarts_redis:
        redis.stop()
        time.sleep(REDIS_DOWN_S)
        redis.start()
    else:
        kill(victims)


async def _load(
    url: str, example: dict, fault: Fault, seconds: float, run_dir: Path, redis: RedisServer
) -> Run:
    run = Run()
    records = [example] * BATCH
    if fault.bad_records:
        records = [{**example, **BAD_RECORD}] + records[1:]
    send = post_batch
    if fault.disconnecting_clients:
        send, records = _stream_and_leave, [example]
    victims = fault.victims()
    watched = replica_ids(APP, "Ingress")[0] if fault.routed_by_haproxy else None
    watchers = []

    async def client_session(
        client: httpx.AsyncClient, reader: httpx.AsyncClient, strike: bool
    ) -> None:
        posted = asyncio.create_task(timed(send(client, records, run), run))
        if strike:
            await asyncio.sleep(STRIKE_AFTER_S)  # its records wait in the heavy replica
            run.fault_at = time.time()
            # Blocking (ray.kill, the server's restart): keep the other clients going.
            await asyncio.to_thread(_strike, fault, victims, redis)
            if watched:
                watchers.append(asyncio.create_task(_haproxy_stops_routing(run_dir, watched, run)))
        await follow_posted(posted, reader, run)

    # Posts and long-polls on pools of their own, with no cap: a capped pool full of
    # long-polls held POSTs back in this client, which read as slow POSTs.
    limits = httpx.Limits(max_connections=None)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client,
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as reader,
    ):
        sessions = []
        for i in range(round(seconds * RATE)):
            strike = i == round(seconds * RATE / 3)
            sessions.append(asyncio.create_task(client_session(client, reader, strike)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*sessions, *watchers)
        run.changed_on_reread = await changed_on_reread(reader, run)
    return run


async def timed(posting: Awaitable[list[str]], run: Run) -> list[str]:
    """The POST's tickets; its time (stage one's answer) in ``run.post_ms``."""
    started = time.perf_counter()
    tickets = await posting
    run.post_ms.append((time.perf_counter() - started) * 1000)
    return tickets


async def follow_posted(posted: Awaitable[list[str]], reader: httpx.AsyncClient, run: Run) -> None:
    """Follow the POST's tickets to their ends; a POST that failed is counted as refused."""
    try:
        tickets = await posted
    except httpx.HTTPStatusError as error:
        run.refused[f"{error.response.status_code} {error.response.text[:60]}"] += 1
        return
    except (httpx.HTTPError, ValueError) as error:
        run.refused[type(error).__name__] += 1
        return
    run.views += await asyncio.gather(*(follow(reader, t, run) for t in tickets))


async def changed_on_reread(client: httpx.AsyncClient, run: Run) -> int:
    """How many completed tickets read differently now than when they completed (a few
    kept in ``run.changes``)."""
    completed = [view for view in run.views if view["status"] == "completed"]
    # A few reads at a time, as clients would: thousands at once would be shed (503).
    reading = asyncio.Semaphore(REREADS_AT_ONCE)

    async def read(ticket: str) -> dict | None:
        async with reading:
            return await _read_once(client, ticket)

    again = await asyncio.gather(*(read(view["ticket"]) for view in completed))
    changed = [(a, b) for a, b in zip(completed, again, strict=True) if a != b]
    run.changes = [{"first": a, "again": b} for a, b in changed[:3]]
    return len(changed)


async def _read_once(client: httpx.AsyncClient, ticket: str) -> dict | None:
    for _ in range(50):  # through 503s and cut connections while a replica restarts
        with contextlib.suppress(httpx.TransportError):
            response = await client.get(paths.ticket_path(ticket))
            if response.status_code < 500:
                return response.json()
        await asyncio.sleep(0.2)
    return None


def tally(run: Run) -> dict:
    views = run.views
    statuses = Counter(view["status"] for view in views)
    failed = Counter(view["error"]["error"] for view in views if view["status"] == "failed")
    after_fault = [
        _epoch(view["finished_at"]) - run.fault_at
        for view in views
        if view["status"] == "completed" and _epoch(view["submitted_at"]) > run.fault_at
    ]
    return {
        "submitted": len(views),
        "completed": statuses["completed"],
        "failed": statuses["failed"],
        "failed_by_reason": dict(failed),
        "canceled": statuses["canceled"],
        "expired": statuses["expired"],
        "lost": statuses["lost"],
        "unresolved": sum(1 for view in views if view["status"] in (*UNFINISHED, "unresolved")),
        "retried": sum(1 for view in views if view.get("attempts", 0) > 1),
        "refused_posts": dict(run.refused),
        "records_without_ticket": dict(run.without_ticket),
        "failed_reads": dict(run.failed_reads),
        "first_completion_after_fault_s": round(min(after_fault), 2) if after_fault else None,
        "post_ms": percentiles(run.post_ms) | {"max": round(max(run.post_ms), 1)},
        "haproxy_stopped_routing_s": run.haproxy_stopped_routing_s,
        "changed_on_reread": run.changed_on_reread,
        "changes": run.changes,
    }


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def service_config(port: int, fault: Fault, redis_url: str, journal_dir: Path) -> dict:
    config = local_config()
    config["http_options"]["port"] = port
    (app,) = config["applications"]
    deployments = {d["name"]: d for d in app["deployments"]}
    deployments["Ingress"]["num_replicas"] = 2
    deployments["TicketStore"]["num_replicas"] = fault.store_replicas
    deployments["HeavyModel"]["user_config"]["batch_wait_timeout_s"] = BATCH_WAIT_S
    # A fresh journal per fault: one fault's tickets never meet the next's.
    app["args"]["journal"] |= {
        "backend": fault.journal,
        "path": str(journal_dir / f"{time.monotonic_ns()}.sqlite"),
        "url": redis_url,
        "key_prefix": f"faults-{time.monotonic_ns()}",
    }
    return config


def _print_table(results: dict) -> None:
    columns = ["submitted", "completed", "failed", "lost", "unresolved", "retried"]
    columns.append("changed_on_reread")
    header = "".join(f"{c:>11}" for c in columns) + "  recovery_s  post p99/max ms  notes"
    print(f"{'fault':45}{header}")
    for name, row in results["faults"].items():
        cells = "".join(f"{row[c]:>11}" for c in columns)
        notes = {
            k: row[k]
            for k in (
                "failed_by_reason",
                "refused_posts",
                "records_without_ticket",
                "failed_reads",
                "haproxy_stopped_routing_s",
            )
            if row[k]
        }
        recovery = f"{row['first_completion_after_fault_s']!s:>10}"
        post = f"{row['post_ms']['p99']:.0f}/{row['post_ms']['max']:.0f}"
        print(f"{name:45}{cells}  {recovery}  {post:>15}  {notes or ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="load per fault")
    parser.add_argument("--out", type=Path, default=Path("results/fault_injection.json"))
    parser.add_argument("--faults", nargs="*", help="only these (names as in the table)")
    args = parser.parse_args()

    example = RecordSchema.load(Path("artifacts/schema.json")).example
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict = {"load": {"posts_per_s": RATE, "records_per_post": BATCH}, "faults": {}}
    with (
        tempfile.TemporaryDirectory() as scratch,
        RedisServer(Path(scratch) / "redis") as redis,
        local_cluster(num_cpus=4, log_to_driver=False) as run_dir,
    ):
        for name, fault in FAULTS.items():
            if args.faults and name not in args.faults:
                continue
            deploy_config(service_config(port, fault, redis.url, Path(scratch)))
            wait_healthy(url, timeout_s=120)
            print(f"-- {name}", flush=True)
            run = asyncio.run(_load(url, example, fault, args.seconds, run_dir, redis))
            results["faults"][name] = tally(run)
    write_results(args.out, results)
    _print_table(results)


if __name__ == "__main__":
    main()
