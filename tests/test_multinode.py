"""The service on a Ray cluster of several nodes, each a raylet of its own on this machine
(Ray's ``Cluster`` utility): placement as ``configs/gpu.yaml`` asks for it, tickets across
nodes, and the loss of the node under the heavy replica.

Nodes: the head (the controller, HAProxy and, by a resource of its own, the ticket
store), a front-end node and two accelerator nodes. A custom ``accelerator`` resource
stands in for the GPU that ``configs/gpu.yaml`` asks for; the accelerator nodes carry the
label that the config's CPU deployments select away from, and CPUs of their own, so only
that label keeps the ingress (with stage one) on the front-end node.
"""

import time
from datetime import datetime

import httpx
import pytest
import ray
import yaml
from conftest import ROOT, deployment_options, local_config, use_slow_heavy_model
from ray import serve
from ray.cluster_utils import Cluster
from support import wait_until_ended

from ops.local_cluster import cluster_environment, deploy_config, replica_actors
from ops.ports import free_port

# Runs before the session's cluster starts: a driver connects to one cluster at a time.
pytestmark = pytest.mark.own_cluster

ACCELERATOR = "accelerator"
# The label of configs/rayservice.yaml's GPU pods.
ACCELERATOR_LABELS = {"node-kind": "accelerator"}
APP = "multistage"
GPU_CONFIG = ROOT / "configs" / "gpu.yaml"


@pytest.fixture(scope="module")
def cluster():
    # No CPUs on the head, as on the manifest's head pod: CPU replicas can go to the
    # front-end node or, but for the label, the accelerator nodes.
    with cluster_environment():
        cluster = Cluster(
            initialize_head=True,
            connect=True,
            head_node_args={"num_cpus": 0, "resources": {"head": 1}, "include_dashboard": False},
        )
        try:
            frontend = cluster.add_node(num_cpus=1)
            accelerators = [
                cluster.add_node(num_cpus=1, resources={ACCELERATOR: 1}, labels=ACCELERATOR_LABELS)
                for _ in "ab"
            ]
            yield cluster, frontend, accelerators
        finally:
            serve.shutdown()
            ray.shutdown()
            cluster.shutdown()


@pytest.fixture(scope="module")
def cluster_http(cluster, artifacts):
    config = placed_config(artifacts, free_port())
    deploy_config(config)
    base_url = f"http://127.0.0.1:{config['http_options']['port']}"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def placed_config(artifacts, port: int) -> dict:
    """The local config placed as configs/gpu.yaml places it: its label selectors on the CPU
    deployments, the accelerator resource on the heavy one."""
    config = local_config(artifacts, port)
    app = config["applications"][0]
    for name, selector in gpu_config_label_selectors().items():
        deployment_options(app, name)["ray_actor_options"]["label_selector"] = selector
    deployment_options(app, "Ingress")["num_replicas"] = 2  # Serve spreads replicas: more to stray
    # The store on the head, apart from the ingress: a resource of its own, no CPU.
    deployment_options(app, "TicketStore")["ray_actor_options"].update(
        num_cpus=0, resources={"head": 0.01}
    )
    # A slow stage two, four records per call, one call at a time: a backlog of tickets
    # is in flight when the node goes.
    app["args"]["ticket_policy"]["records_per_call"] = 4
    heavy = use_slow_heavy_model(app, artifacts, max_batch_size=4)
    heavy["ray_actor_options"] = {"num_cpus": 0.5, "resources": {ACCELERATOR: 1}}
    return config


def gpu_config_label_selectors() -> dict[str, dict[str, str]]:
    """Each deployment of configs/gpu.yaml that has a label selector, with it."""
    app = yaml.safe_load(GPU_CONFIG.read_text())["applications"][0]
    return {
        d["name"]: d["ray_actor_options"]["label_selector"]
        for d in app["deployments"]
        if "label_selector" in d.get("ray_actor_options", {})
    }


def nodes_of(deployment: str) -> list[str]:
    """The node id of each replica of ``deployment``."""
    where = [
        actor.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
        for actor in replica_actors(APP, deployment)
    ]
    return ray.get(where)


def test_each_deployment_runs_on_its_kind_of_node(cluster, cluster_http, example):
    head_cluster, frontend, accelerators = cluster
    assert set(gpu_config_label_selectors()) == {"Ingress", "TicketStore"}
    assert set(nodes_of("Ingress")) == {frontend.node_id}
    assert nodes_of("TicketStore") == [head_cluster.head_node.node_id]
    assert set(nodes_of("HeavyModel")) <= {node.node_id for node in accelerators}

    url = cluster_http.post("/v1/predict", json=example).json()["stage_two"]["url"]
    assert wait_until_ended(cluster_http, url).json()["status"] == "completed"


def test_losing_the_heavy_node_retries_its_tickets_elsewhere(cluster, cluster_http, example):
    head_cluster, _, accelerators = cluster
    [heavy_node_id] = nodes_of("HeavyModel")
    doomed = next(node for node in accelerators if node.node_id == heavy_node_id)
    survivor = next(node for node in accelerators if node is not doomed)

    backlog = cluster_http.post("/v1/predict/batch", json={"records": [example] * 64}).json()
    tickets = [item["stage_two"]["url"] for item in backlog["results"]]
    wait_until_ended(cluster_http, tickets[0])  # stage two is busy on the doomed node

    killed_at = time.time()
    head_cluster.remove_node(doomed, allow_graceful=False)
    # New requests during the outage: stage one answers each at once.
    after_kill = []
    for _ in range(5):
        response = cluster_http.post("/v1/predict", json=example)
        assert response.status_code == 200
        after_kill.append(response.json())
        time.sleep(1)

    ended = [wait_until_ended(cluster_http, url, timeout_s=180).json() for url in tickets]
    in_flight = [view for view in ended if _seconds(view["finished_at"]) > killed_at]
    assert in_flight, "the backlog drained before the node was killed"
    for view in in_flight:
        assert view["status"] in ("completed", "failed"), view
        if view["status"] == "failed":
            assert view["error"]["error"] == "replica_lost", view
    new = [wait_until_ended(cluster_http, a["stage_two"]["url"], 180).json() for a in after_kill]
    completed_new = [_seconds(v["finished_at"]) for v in new if v["status"] == "completed"]
    assert completed_new, new
    assert nodes_of("HeavyModel") == [survivor.node_id]

    last_in_flight = max(_seconds(view["finished_at"]) for view in in_flight)
    statuses = sorted({view["status"] for view in in_flight})
    print(
        f"\nnode with the heavy replica killed at t=0 ({len(in_flight)} tickets in flight; "
        f"they ended {statuses}, attempts up to {max(v['attempts'] for v in in_flight)})\n"
        f"last in-flight ticket ended at t+{last_in_flight - killed_at:.1f} s\n"
        f"first new request's stage two completed at t+{min(completed_new) - killed_at:.1f} s\n"
        f"stage one answered all {len(after_kill)} requests sent during the outage, "
        f"slowest {max(a['stage_one']['latency_ms'] for a in after_kill):.0f} ms"
    )


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()
