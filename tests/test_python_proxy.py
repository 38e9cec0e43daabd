"""The fallback: the same config served by Serve's Python HTTP proxy instead of HAProxy
(a cluster started without ``configs/fast-path.env``, as ``make run PROXY=python``)."""

import json

import httpx
import pytest
from conftest import local_config
from httpx_sse import connect_sse
from support import wait_until_ended
from websockets.sync.client import connect

from multistage_client import paths
from ops.local_cluster import deploy_config, local_cluster
from ops.ports import free_port

# Runs before the session's cluster starts: a driver connects to one cluster at a time.
pytestmark = pytest.mark.own_cluster


@pytest.fixture(scope="module")
def python_proxy_http(artifacts):
    with local_cluster("python", num_cpus=4, log_to_driver=False) as haproxy_dir:
        config = local_config(artifacts, free_port())
        deploy_config(config)
        assert not list(haproxy_dir.iterdir())  # no HAProxy ran
        base_url = f"http://127.0.0.1:{config['http_options']['port']}"
        with httpx.Client(base_url=base_url, timeout=30) as client:
            yield client


def test_both_stages_behind_the_python_proxy(python_proxy_http, example):
    answer = python_proxy_http.post(paths.PREDICT, json=example)
    assert answer.status_code == 200
    view = wait_until_ended(python_proxy_http, answer.json()["stage_two"]["url"]).json()
    assert view["status"] == "completed"

    with connect_sse(python_proxy_http, "POST", paths.PREDICT_STREAM, json=example) as events:
        names = [event.event for event in events.iter_sse()]
    assert names == ["stage1", "stage2"]


def test_stream_sessions_behind_the_python_proxy(python_proxy_http, example):
    url = f"{str(python_proxy_http.base_url).replace('http', 'ws', 1).rstrip('/')}{paths.STREAMS}"
    with connect(url) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(json.dumps({**example, "seq": 1}))
        kinds = [json.loads(ws.recv(timeout=60))["type"] for _ in range(2)]
    assert kinds == ["stage1", "stage2"]
