"""Shared fixtures: small trained models, one local Ray cluster, the service deployed from YAML.

The session deploys ``configs/local.yaml`` itself, with its args pointed at models
trained here, through the same controller call ``serve run <config>`` makes. Four
applications run side by side:

- ``multistage`` at ``/``: the local config with two ingress replicas;
- ``saturated`` at ``/saturated``: the same graph with a deliberately heavy stage
  two (a wide network, one photo per call and per pass), to fill its queue, a half-second
  event-stream heartbeat, and admission control at ``SATURATED_MAX_UNFINISHED``;
- ``overloaded`` at ``/overloaded``: stage one sheds a request that finds its event loop
  busy for more than a couple of milliseconds, so a burst of requests is partly shed
  with 503s;
- ``guarded`` at ``/guarded``: needs a tenant's key, from its tenants file
  (``tenants_file``): ``API_KEY`` is tenant ``acme``'s, ``OTHER_KEY`` tenant ``globex``'s;
  keeps results for ``GUARDED_TTL_S`` only, and closes stream sessions idle for
  ``GUARDED_IDLE_S``.

``multistage``, ``saturated`` and ``guarded`` journal their tickets in SQLite files of
their own (as ``configs/local.yaml`` does, in ``state/``); ``overloaded`` keeps them in
memory. A Redis
server of the session's own (``redis_server``) serves the modules that need one.
All four write their JSON log files to ``serve_logs``; the node's metrics agent serves
Prometheus metrics at ``metrics_url``. The cluster runs Serve's HAProxy ingress, as
``make run`` does (``configs/fast-path.env``); ``haproxy_dir`` holds its files.
"""

import copy
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest
import yaml

from multistage.models.schema import RecordSchema
from ops.ports import free_port
from ops.redis_server import RedisServer, redis_binary

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "configs" / "local.yaml"
# Wide enough that one photo takes tens of milliseconds on one CPU thread.
SATURATED_WIDTH = 384
SATURATED_MAX_UNFINISHED = 100
API_KEY = "test-key-" + "x" * 24
OTHER_KEY = "other-key-" + "y" * 24
# The guarded app's tenants' caps on unfinished tickets: globex's, small; acme has none.
GUARDED_LIMITS = {"globex": 2}
GUARDED_TTL_S = 2.0
GUARDED_IDLE_S = 2.0  # its stream sessions close after this long without a message
# The session's apps sign ticket ids with it (signing.secret_env), so tests can make ids
# the service would have issued without ever sending their submissions.
TICKET_SECRET = bytes(range(32))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that start a Ray cluster of their own go first, before the session's cluster:
    # this process's driver can connect to one cluster at a time.
    items.sort(key=lambda item: item.get_closest_marker("own_cluster") is None)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    # Imported here, as Ray is below: the unit tests (tests/unit) load this file too, and
    # import neither torch nor Ray.
    import torch

    from demo.net import build_model
    from demo.train import train_all

    out = tmp_path_factory.mktemp("artifacts")
    train_all(out, train_size=2000, test_size=200, epochs=1, seed=0)
    # An untrained wide network: real compute, no training time.
    slow = build_model(RecordSchema.load(out / "schema.json"), width=SATURATED_WIDTH)
    torch.save(slow.state_dict(), out / "slow.pt")
    return out


@pytest.fixture(scope="session")
def schema(artifacts) -> RecordSchema:
    return RecordSchema.load(artifacts / "schema.json")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> RedisServer:
    """A Redis server of the session's own, for the journal's Redis backend; tests that
    need it are skipped where none is installed (``make redis``), unless
    ``MULTISTAGE_REQUIRE_REDIS`` is set (CI sets it): then they fail."""
    if redis_binary() is None:
        if os.environ.get("MULTISTAGE_REQUIRE_REDIS"):
            pytest.fail("MULTISTAGE_REQUIRE_REDIS is set and no redis-server is installed")
        pytest.skip("no redis-server installed (make redis)")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def serve_logs(tmp_path_factory) -> Path:
    """Where the ``multistage`` app's replicas write their (JSON) logs."""
    return tmp_path_factory.mktemp("serve_logs")


@pytest.fixture(scope="session")
def tenants_file(tmp_path_factory) -> Path:
    """The guarded app's tenants file (tests that change it must restore it)."""
    path = tmp_path_factory.mktemp("tenants") / "tenants.json"
    write_tenants(path, {"acme": API_KEY, "globex": OTHER_KEY}, GUARDED_LIMITS)
    return path


def write_tenants(path: Path, keys: dict[str, str], limits: dict[str, int] | None = None) -> None:
    """A tenants file: each tenant's key, as its SHA-256, and its cap if it has one."""
    limits = limits or {}
    tenants = {
        name: {"key_sha256": hashlib.sha256(key.encode()).hexdigest()}
        | ({"max_unfinished": limits[name]} if name in limits else {})
        for name, key in keys.items()
    }
    path.write_text(json.dumps({"tenants": tenants}))


@pytest.fixture(scope="session")
def service_config(artifacts, serve_logs, tenants_file) -> dict:
    """The Serve config the session deploys (tests that change it must restore it)."""
    journals = serve_logs.parent / "journals"
    return _test_config(artifacts, free_port(), serve_logs, journals, tenants_file)


@pytest.fixture(scope="session")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def haproxy_dir(service_config, metrics_port) -> Path:
    """The session's local cluster, behind HAProxy: the folder of HAProxy's files."""
    from ops.local_cluster import local_cluster

    with local_cluster(
        extra_env={"MULTISTAGE_TICKET_SECRET": TICKET_SECRET.hex()},
        num_cpus=8,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
        # Metrics reach the scrape endpoint within a second, not Ray's default ten.
        _system_config={"metrics_report_interval_ms": 1000},
    ) as run_dir:
        yield run_dir


@pytest.fixture(scope="session")
def serve_url(haproxy_dir, service_config) -> str:
    """Base URL of the live service (HAProxy) running the test applications."""
    from ops.local_cluster import deploy_config

    deploy_config(service_config)
    return f"http://127.0.0.1:{service_config['http_options']['port']}"


@pytest.fixture(scope="session")
def metrics_url(serve_url, metrics_port) -> str:
    """The Prometheus endpoint of the session cluster's (single) node."""
    return f"http://127.0.0.1:{metrics_port}/metrics"


@pytest.fixture(scope="session")
def redeploy(serve_url):
    """Apply a changed config to the running cluster, as `serve deploy` would."""
    from ops.local_cluster import deploy_config

    return deploy_config


@pytest.fixture(scope="session")
def http(serve_url) -> httpx.Client:
    with httpx.Client(base_url=serve_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def example(schema) -> dict:
    return copy.deepcopy(schema.example)


def local_config(artifacts: Path, port: int) -> dict:
    """``configs/local.yaml`` serving the models in ``artifacts`` on ``port``."""
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["http_options"]["port"] = port
    args = config["applications"][0]["args"]
    args["schema_path"] = str(artifacts / "schema.json")
    args["tabular"]["path"] = str(artifacts / "tabular.ubj")
    args["heavy"]["weights"] = str(artifacts / "heavy.pt")
    return config


def _test_config(
    artifacts: Path, port: int, logs: Path, journals: Path, tenants_file: Path
) -> dict:
    config = local_config(artifacts, port)
    main = config["applications"][0]
    # Each app journals its tickets in a file of its own (as configured: SQLite).
    main["args"]["journal"]["path"] = str(journals / "multistage.sqlite")
    deployment_options(main, "Ingress")["num_replicas"] = 2
    main["logging_config"]["logs_dir"] = str(logs)

    saturated = copy.deepcopy(main)
    saturated.update(name="saturated", route_prefix="/saturated")
    deployment_options(saturated, "Ingress")["num_replicas"] = 1
    use_slow_heavy_model(saturated, artifacts, max_batch_size=1)
    saturated["args"]["http"]["heartbeat_s"] = 0.5
    saturated["args"]["ticket_policy"]["max_unfinished"] = SATURATED_MAX_UNFINISHED
    # One record per call too: shared calls would drain a test's backlog too fast.
    saturated["args"]["ticket_policy"]["records_per_call"] = 1
    saturated["args"]["journal"]["path"] = str(journals / "saturated.sqlite")

    overloaded = copy.deepcopy(main)
    overloaded.update(name="overloaded", route_prefix="/overloaded")
    deployment_options(overloaded, "Ingress")["num_replicas"] = 1
    overloaded["args"]["journal"] = {"backend": "memory"}
    # A request that finds the loop busy for 2 ms is shed: in a burst, most are.
    overloaded["args"]["http"]["shed_after_ms"] = 2
    guarded = copy.deepcopy(main)
    guarded.update(name="guarded", route_prefix="/guarded")
    guarded["args"]["auth"] = {"tenants_file": str(tenants_file)}
    deployment_options(guarded, "Ingress")["num_replicas"] = 1
    guarded["args"]["ticket_policy"].update(result_ttl_s=GUARDED_TTL_S, max_held=5000)
    guarded["args"]["streams"] = {"idle_timeout_s": GUARDED_IDLE_S, "auth_timeout_s": 2}
    # Journaled: a result past its TTL reads expired though the journal outlives it.
    guarded["args"]["journal"]["path"] = str(journals / "guarded.sqlite")

    config["applications"] = [main, saturated, overloaded, guarded]
    return config


def use_slow_heavy_model(app: dict, artifacts: Path, max_batch_size: int) -> dict:
    """Give ``app`` the wide untrained stage two on one replica taking one call at a time,
    so work queues behind it; returns HeavyModel's options."""
    app["args"]["heavy"].update(
        weights=str(artifacts / "slow.pt"), factory_kwargs={"width": SATURATED_WIDTH}
    )
    heavy = deployment_options(app, "HeavyModel")
    heavy.pop("autoscaling_config")
    heavy.update(
        num_replicas=1,
        max_ongoing_requests=1,
        user_config={"max_batch_size": max_batch_size, "batch_wait_timeout_s": 0},
    )
    return heavy


def deployment_options(app: dict, name: str) -> dict:
    return next(d for d in app["deployments"] if d["name"] == name)
