"""Operating a Serve app on a Ray cluster this process is connected to: deploy a config
the way ``serve run <config>`` does, and kill replicas to inject faults.

Used by the tests and the fault-injection benchmark. ``serve_start`` is Serve's private
entry point behind ``serve run``; if a Ray upgrade moves it, this is the one place to change.
"""

from __future__ import annotations

import socket
import time

import ray
from ray import serve
from ray.serve._private.api import serve_start
from ray.serve.schema import ServeDeploySchema


def deploy_config(config: dict, timeout_s: float = 240) -> None:
    """Apply ``config`` (a Serve config file's content), then wait until every app runs."""
    schema = ServeDeploySchema.model_validate(config)
    client = serve_start(
        http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location
    )
    client.deploy_apps(schema)
    expected = {app.name for app in schema.applications}
    deadline = time.monotonic() + timeout_s
    while not _running(expected):
        if time.monotonic() > deadline:
            raise TimeoutError(f"apps not running after {timeout_s}s: {serve.status()}")
        time.sleep(1)


def replica_actors(app: str, deployment: str) -> list[ray.actor.ActorHandle]:
    """Handles to the replica actors of a deployment, in a stable order."""
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = sorted(
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(prefix)
    )
    return [ray.get_actor(name, namespace="serve") for name in names]


def kill(actors: list[ray.actor.ActorHandle]) -> int:
    """SIGKILL the actors (Serve replaces replicas it loses); how many were killed."""
    for actor in actors:
        ray.kill(actor, no_restart=True)
    return len(actors)


def kill_replicas(app: str, deployment: str) -> int:
    """SIGKILL every replica of a deployment; how many there were."""
    return kill(replica_actors(app, deployment))


def free_port() -> int:
    """A TCP port nothing listens on now, for a Serve proxy of our own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _running(apps: set[str]) -> bool:
    status = serve.status().applications
    return apps <= set(status) and all(status[name].status == "RUNNING" for name in apps)
