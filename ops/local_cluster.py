"""A local Ray cluster serving the application, for the tests and the benchmarks: start
it with the fast path's environment, deploy a config the way ``serve run <config>`` does,
kill replicas to inject faults, and stop it with nothing of it left running.

``serve_start`` is Serve's private entry point behind ``serve run``
(``multistage/ray_private.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ray
from ray import serve
from ray.serve.schema import ServeDeploySchema

from multistage.ray_private import serve_start
from ops import haproxy
from ops.cluster_env import Proxy, local_cluster_env
from ops.ports import free_port


@contextlib.contextmanager
def cluster_environment(
    proxy: Proxy = "haproxy", extra_env: dict[str, str] | None = None
) -> Iterator[Path]:
    """This process's environment set for a local cluster behind ``proxy``, plus
    ``extra_env`` (every Ray process started meanwhile inherits it); on exit, the
    environment is restored and any HAProxy process of the cluster that outlived it is
    stopped. Yields HAProxy's folder.
    """
    # Short: HAProxy's admin socket path, below it, must fit a Unix socket's 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="ms-hap-"))
    env = local_cluster_env(proxy, run_dir, stats_port=free_port(), metrics_port=free_port())
    env |= extra_env or {}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield run_dir
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        haproxy.stop(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(
    proxy: Proxy = "haproxy", extra_env: dict[str, str] | None = None, **ray_init: object
) -> Iterator[Path]:
    """A one-node Ray cluster (``ray.init(**ray_init)``, no dashboard) behind ``proxy``;
    Serve and Ray are shut down on exit. Yields HAProxy's folder."""
    with cluster_environment(proxy, extra_env) as run_dir:
        # "local": a new cluster, never one Ray recorded earlier on this machine.
        ray.init(address="local", include_dashboard=False, **ray_init)
        stopping = _exit_on_sigterm()
        try:
            yield run_dir
        finally:
            serve.shutdown()
            ray.shutdown()
            signal.signal(signal.SIGTERM, stopping)


def _exit_on_sigterm() -> signal.Handlers:
    """SIGTERM unwinds this process through the clean-up (Ray's driver handler, installed
    by ``ray.init``, aborts it, leaving its cluster's processes behind); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return signal.getsignal(signal.SIGTERM) or signal.SIG_DFL
    return signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)) or signal.SIG_DFL


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


def replica_ids(app: str, deployment: str) -> list[str]:
    """The ids of a deployment's replicas, in a stable order."""
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    return sorted(
        actor["name"].removeprefix(prefix)
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith(prefix)
    )


def replica_actors(app: str, deployment: str) -> list[ray.actor.ActorHandle]:
    """Handles to the replica actors of a deployment, in a stable order."""
    return [
        ray.get_actor(f"SERVE_REPLICA::{app}#{deployment}#{replica}", namespace="serve")
        for replica in replica_ids(app, deployment)
    ]


def kill(actors: list[ray.actor.ActorHandle]) -> int:
    """SIGKILL the actors (Serve replaces replicas it loses); how many were killed."""
    for actor in actors:
        ray.kill(actor, no_restart=True)
    return len(actors)


def kill_replicas(app: str, deployment: str) -> int:
    """SIGKILL every replica of a deployment; how many there were."""
    return kill(replica_actors(app, deployment))


def _running(apps: set[str]) -> bool:
    status = serve.status().applications
    return apps <= set(status) and all(status[name].status == "RUNNING" for name in apps)
