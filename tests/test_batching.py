"""Stage two batches concurrent requests, and its batch size changes at runtime.

Changing the heavy deployment's ``user_config`` reaches the running replicas through
``reconfigure``: no replica is replaced.
"""

import asyncio
import copy

import httpx
import ray
from support import wait_for_condition

CONCURRENT = 24


async def _batch_sizes(base_url: str, example: dict) -> list[int]:
    """Stage two's batch size for each of CONCURRENT simultaneous requests."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        posts = await asyncio.gather(
            *(client.post("/v1/predict", json=example) for _ in range(CONCURRENT))
        )
        views = await asyncio.gather(
            *(client.get(p.json()["stage_two"]["url"], params={"wait": 30}) for p in posts)
        )
    assert all(v.json()["status"] == "completed" for v in views)
    return [v.json()["result"]["batch_size"] for v in views]


def _heavy_replicas() -> set[str]:
    names = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in names if a["name"].startswith("SERVE_REPLICA::multistage#Heavy")}


def test_batch_size_follows_user_config_without_replacing_replicas(
    serve_url, example, service_config, redeploy
):
    assert max(asyncio.run(_batch_sizes(serve_url, example))) > 1
    replicas = _heavy_replicas()

    unbatched = copy.deepcopy(service_config)
    heavy = next(
        d for d in unbatched["applications"][0]["deployments"] if d["name"] == "HeavyModel"
    )
    heavy["user_config"] = {"max_batch_size": 1, "batch_wait_timeout_s": 0}
    try:
        redeploy(unbatched)
        wait_for_condition(
            lambda: max(asyncio.run(_batch_sizes(serve_url, example))) == 1, timeout=60
        )
        assert _heavy_replicas() == replicas
    finally:
        redeploy(service_config)
