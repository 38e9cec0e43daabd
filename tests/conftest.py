"""Shared fixtures: small trained models, one local Ray cluster, the service deployed from YAML.

The session deploys ``configs/local.yaml`` itself, with its args pointed at models
trained here, through the same controller call ``serve run <config>`` makes. Two
applications run side by side:

- ``multistage`` at ``/``: the local config with two ingress replicas;
- ``saturated`` at ``/saturated``: the same graph with a deliberately heavy stage
  two (a wide network, batch size 1, one request at a time), to fill its queue, and
  a half-second event-stream heartbeat;
- ``overloaded`` at ``/overloaded``: stage one takes one request at a time with a
  queue of one, so a burst of requests is shed with 503s.
"""

import copy
import socket
from pathlib import Path

import httpx
import pytest
import ray
import torch
import yaml
from ray import serve
from ray._common.test_utils import wait_for_condition
from ray.serve._private.api import serve_start
from ray.serve.schema import ServeDeploySchema

from demo.net import build_model
from demo.train import train_all
from multistage.schema import RecordSchema

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "configs" / "local.yaml"
# Wide enough that one photo takes tens of milliseconds on one CPU thread.
SATURATED_WIDTH = 384


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
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
def service_config(artifacts) -> dict:
    """The Serve config the session deploys (tests that change it must restore it)."""
    return _test_config(artifacts, _free_port())


@pytest.fixture(scope="session")
def serve_url(service_config) -> str:
    """Base URL of a live Serve HTTP proxy running both test applications."""
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    try:
        deploy(service_config)
        yield f"http://127.0.0.1:{service_config['http_options']['port']}"
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="session")
def redeploy(serve_url):
    """Apply a changed config to the running cluster, as `serve deploy` would."""
    return deploy


def deploy(config: dict) -> None:
    """Apply ``config`` the way `serve run <config>` does, then wait until every app runs."""
    schema = ServeDeploySchema.model_validate(config)
    client = serve_start(
        http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location
    )
    client.deploy_apps(schema)
    wait_for_condition(_all_running, timeout=240, retry_interval_ms=1000)


@pytest.fixture(scope="session")
def http(serve_url) -> httpx.Client:
    with httpx.Client(base_url=serve_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def example(schema) -> dict:
    return copy.deepcopy(schema.example)


def _test_config(artifacts: Path, port: int) -> dict:
    config = yaml.safe_load(LOCAL_CONFIG.read_text())
    config["http_options"]["port"] = port
    main = config["applications"][0]
    main["args"]["schema_path"] = str(artifacts / "schema.json")
    main["args"]["tabular"]["path"] = str(artifacts / "tabular.ubj")
    main["args"]["heavy"]["weights"] = str(artifacts / "heavy.pt")
    deployment_options(main, "Ingress")["num_replicas"] = 2

    saturated = copy.deepcopy(main)
    saturated.update(name="saturated", route_prefix="/saturated")
    saturated["args"]["heavy"].update(
        weights=str(artifacts / "slow.pt"), factory_kwargs={"width": SATURATED_WIDTH}
    )
    deployment_options(saturated, "Ingress")["num_replicas"] = 1
    heavy = deployment_options(saturated, "HeavyModel")
    heavy.pop("autoscaling_config")
    heavy.update(
        num_replicas=1,
        max_ongoing_requests=1,
        user_config={"max_batch_size": 1, "batch_wait_timeout_s": 0},
    )
    saturated["args"]["http"]["heartbeat_s"] = 0.5

    overloaded = copy.deepcopy(main)
    overloaded.update(name="overloaded", route_prefix="/overloaded")
    deployment_options(overloaded, "Ingress")["num_replicas"] = 1
    deployment_options(overloaded, "TabularModel").update(
        max_ongoing_requests=1, max_queued_requests=1
    )
    config["applications"] = [main, saturated, overloaded]
    return config


def deployment_options(app: dict, name: str) -> dict:
    return next(d for d in app["deployments"] if d["name"] == name)


def _all_running() -> bool:
    apps = serve.status().applications
    return len(apps) == 3 and all(a.status == "RUNNING" for a in apps.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
