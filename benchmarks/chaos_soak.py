"""Chaos soak: steady load for minutes while a random replica of a random deployment is
killed every 30 s; every ticket's end, counted.

    make soak        (python -m benchmarks.chaos_soak [--minutes 10] [--every-s 30])

Starts a local Ray cluster of its own (Serve's HAProxy ingress, as ``make run``) and a
Redis server of its own, and deploys ``configs/local.yaml`` with the ticket journal on
Redis, two ingress replicas and two ticket store replicas (the fault injection's
settings otherwise: ``benchmarks/fault_injection.py``). Clients post batches at a
steady rate and follow each ticket to its end (long-poll, through failed reads), while
the killer SIGKILLs one replica of Ingress, TicketStore or HeavyModel, chosen at
random, every ``--every-s``. Reports tickets submitted, completed, failed (by reason),
lost and unresolved, POSTs refused (an ingress replica died under them), completed
results that read differently at the end, and the kills; writes
``results/chaos_soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.fault_injection import (
    APP,
    BATCH,
    RATE,
    Fault,
    Run,
    changed_on_reread,
    follow_posted,
    post_batch,
    service_config,
    tally,
    timed,
)
from benchmarks.report import write_results
from benchmarks.serve_process import wait_healthy
from multistage.models.schema import RecordSchema
from ops.local_cluster import deploy_config, kill, local_cluster, replica_actors
from ops.ports import free_port
from ops.redis_server import RedisServer

DEPLOYMENTS = ("Ingress", "TicketStore", "HeavyModel")
SOAK = Fault(journal="redis", store_replicas=2)


async def _soak(url: str, example: dict, seconds: float, every_s: float, rng) -> tuple:
    run, kills = Run(), []
    started = time.monotonic()

    async def killer() -> None:
        while (elapsed := time.monotonic() - started) + every_s < seconds:
            await asyncio.sleep(every_s)
            deployment = rng.choice(DEPLOYMENTS)
            replicas = await asyncio.to_thread(replica_actors, APP, deployment)
            if replicas:
                await asyncio.to_thread(kill, [rng.choice(replicas)])
            kills.append({"at_s": round(elapsed + every_s, 1), "deployment": deployment})
            print(f"  {elapsed + every_s:6.0f} s: killed a {deployment} replica", flush=True)

    async def client_session(client: httpx.AsyncClient, reader: httpx.AsyncClient) -> None:
        await follow_posted(timed(post_batch(client, [example] * BATCH, run), run), reader, run)

    limits = httpx.Limits(max_connections=None)
    async with (
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client,
        httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as reader,
    ):
        killing = asyncio.create_task(killer())
        sessions = []
        while time.monotonic() - started < seconds:
            sessions.append(asyncio.create_task(client_session(client, reader)))
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(killing, *sessions)
        run.changed_on_reread = await changed_on_reread(reader, run)
    return run, kills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every-s", type=float, default=30.0, help="between kills")
    parser.add_argument("--seed", type=int, default=0, help="which replicas die, in order")
    parser.add_argument("--out", type=Path, default=Path("results/chaos_soak.json"))
    args = parser.parse_args()

    example = RecordSchema.load(Path("artifacts/schema.json")).example
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as scratch,
        RedisServer(Path(scratch) / "redis") as redis,
        local_cluster(num_cpus=4, log_to_driver=False),
    ):
        config = service_config(port, SOAK, redis.url, Path(scratch))
        # Results are held past the soak, so the final rereads find every one of them.
        policy = config["applications"][0]["args"]["ticket_policy"]
        policy["result_ttl_s"] = max(policy["result_ttl_s"], args.minutes * 60 + 300)
        deploy_config(config)
        wait_healthy(url, timeout_s=120)
        print(f"soak: {args.minutes:g} min, a kill every {args.every_s:g} s", flush=True)
        rng = random.Random(args.seed)
        run, kills = asyncio.run(_soak(url, example, args.minutes * 60, args.every_s, rng))
    counts = tally(run)
    report = {
        "load": {"posts_per_s": RATE, "records_per_post": BATCH, "minutes": args.minutes},
        "setup": {"journal": SOAK.journal, "store_replicas": SOAK.store_replicas},
        "tickets": {
            key: counts[key]
            for key in (
                "submitted",
                "completed",
                "failed",
                "failed_by_reason",
                "canceled",
                "expired",
                "lost",
                "unresolved",
                "retried",
                "changed_on_reread",
                "changes",
            )
        },  # fmt: skip
        "refused_posts": counts["refused_posts"],
        "records_without_ticket": counts["records_without_ticket"],
        "post_ms": counts["post_ms"],
        "kills": kills,
    }
    write_results(args.out, report)


if __name__ == "__main__":
    main()
