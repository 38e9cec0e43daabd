"""configs/rayservice.yaml is a KubeRay RayService that serves exactly configs/gpu.yaml.

No cluster needed: the manifest is checked against the part of KubeRay's RayService CRD
(ray.io/v1) it uses, modelled below, and its pods against the replicas Serve will place.
"""

import math
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pytest
import ray
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from ray.serve.schema import ServeDeploySchema

from ops.cluster_env import fast_path_env

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
MANIFEST = CONFIGS / "rayservice.yaml"
SERVE_CONFIG = CONFIGS / "gpu.yaml"
GPU = "nvidia.com/gpu"

# A Kubernetes quantity: "8", "500m", "16Gi" or a bare integer (the CRD's int-or-string).
Quantity = int | StrictStr
# Fields of the CRD this manifest does not use: allowed, not checked further.
Unused = Any


class Closed(BaseModel):
    """A type the CRD spells out in full (KubeRay's own, small Kubernetes ones): typos fail."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Open(BaseModel):
    """A Kubernetes core type with many more fields than are modelled here."""

    model_config = ConfigDict(extra="allow", strict=True)


class Resources(Closed):
    # Both required here, though Kubernetes allows either: KubeRay advises requests = limits.
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]
    claims: Unused = None


class Port(Closed):
    containerPort: int
    name: str | None = None
    protocol: str | None = None
    hostPort: Unused = None
    hostIP: Unused = None


class EnvVar(Closed):
    name: str
    value: str | None = None
    valueFrom: Unused = None


class Container(Open):
    name: str
    image: str
    resources: Resources
    ports: list[Port] = []
    env: list[EnvVar] = []


class PodSpec(Open):
    containers: list[Container]


class PodTemplate(Closed):
    metadata: dict[str, Any] | None = None
    spec: PodSpec


class HeadGroupSpec(Closed):
    rayStartParams: dict[str, StrictStr]  # `ray start` flags; the CRD wants strings
    template: PodTemplate
    serviceType: str | None = None
    headService: Unused = None
    enableIngress: bool | None = None
    ingressOptions: Unused = None
    resources: dict[str, str] | None = None
    labels: dict[str, str] | None = None


class WorkerGroupSpec(Closed):
    groupName: str
    replicas: NonNegativeInt
    minReplicas: NonNegativeInt
    maxReplicas: NonNegativeInt
    rayStartParams: dict[str, StrictStr]
    template: PodTemplate
    idleTimeoutSeconds: int | None = None
    priority: int | None = None
    resources: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    scaleStrategy: Unused = None
    numOfHosts: int | None = None
    suspend: bool | None = None

    @model_validator(mode="after")
    def replicas_within_bounds(self) -> "WorkerGroupSpec":
        if not self.minReplicas <= self.replicas <= self.maxReplicas:
            raise ValueError(f"{self.groupName}: needs minReplicas <= replicas <= maxReplicas")
        return self


class RayClusterSpec(Closed):
    rayVersion: str
    enableInTreeAutoscaling: bool
    headGroupSpec: HeadGroupSpec
    workerGroupSpecs: list[WorkerGroupSpec]
    autoscalerOptions: Unused = None
    headServiceAnnotations: dict[str, str] | None = None
    gcsFaultToleranceOptions: Unused = None
    upgradeStrategy: Unused = None
    authOptions: Unused = None
    managedBy: str | None = None
    suspend: bool | None = None
    historyServerOptions: Unused = None
    networkPolicy: Unused = None
    tlsOptions: Unused = None


class RayServiceSpec(Closed):
    serveConfigV2: StrictStr  # a YAML document in a string, not a mapping
    rayClusterConfig: RayClusterSpec
    upgradeStrategy: Unused = None
    serveService: Unused = None
    excludeHeadPodFromServeSvc: bool | None = None
    rayClusterDeletionDelaySeconds: NonNegativeInt | None = None
    serviceUnhealthySecondThreshold: Unused = None  # deprecated
    deploymentUnhealthySecondThreshold: Unused = None  # deprecated


class Metadata(Open):
    name: str


class RayService(Closed):
    apiVersion: Literal["ray.io/v1"]
    kind: Literal["RayService"]
    metadata: Metadata
    spec: RayServiceSpec


@pytest.fixture(scope="module")
def service() -> RayService:
    return RayService.model_validate(yaml.safe_load(MANIFEST.read_text()))


@pytest.fixture(scope="module")
def serve_config(service: RayService) -> dict:
    return yaml.safe_load(service.spec.serveConfigV2)


def test_serve_config_is_gpu_yaml(serve_config: dict) -> None:
    assert serve_config == yaml.safe_load(SERVE_CONFIG.read_text()), (
        f"spec.serveConfigV2 in configs/{MANIFEST.name} differs from configs/{SERVE_CONFIG.name}:"
        " the manifest must embed the GPU Serve config unchanged, so edit both files together"
    )


def test_serve_config_is_a_valid_serve_config(serve_config: dict) -> None:
    ServeDeploySchema.model_validate(serve_config)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("serveConfigV2:", "serveConfigv2:"),  # misspelt field
        ("workerGroupSpecs:", "workerGroupSpec:"),  # misspelt field
        ("kind: RayService", "kind: RayCluster"),
        ('num-cpus: "0"', "num-cpus: 0"),  # rayStartParams values are strings
        ("replicas: 1", 'replicas: "1"'),  # replica counts are integers
        ("maxReplicas: 8", "maxReplicas: 0"),  # replicas above maxReplicas
    ],
)
def test_models_catch_broken_manifests(old: str, new: str) -> None:
    # The models are only worth having if they are strict: each edit must fail them.
    text = MANIFEST.read_text()
    assert old in text
    with pytest.raises(ValidationError):
        RayService.model_validate(yaml.safe_load(text.replace(old, new)))


def test_ray_version_is_the_one_the_project_pins(service: RayService) -> None:
    # The image must carry the Ray the code runs on here (ray[serve]==2.60.*).
    minor = ray.__version__.rsplit(".", 1)[0]
    assert service.spec.rayClusterConfig.rayVersion.startswith(minor + ".")


def test_head_exposes_the_serve_port(service: RayService, serve_config: dict) -> None:
    # KubeRay's Serve service sends traffic to the Ray container's port named "serve".
    head = _ray_container(service.spec.rayClusterConfig.headGroupSpec)
    assert {p.name: p.containerPort for p in head.ports}["serve"] == (
        serve_config["http_options"]["port"]
    )


def test_gpu_pods_request_a_gpu(service: RayService) -> None:
    # Kubernetes wants requests equal to limits for GPUs; Ray counts the limit.
    resources = _ray_container(_groups(service)["gpu"]).resources
    assert resources.requests.get(GPU) == resources.limits.get(GPU)
    assert int(resources.limits[GPU]) >= 1


def test_every_replica_fits_a_worker_pod(service: RayService, serve_config: dict) -> None:
    groups = _groups(service)
    for deployment in _deployments(serve_config):
        need, pod = _needs(deployment), _ray_capacity(groups[_group_of(deployment)])
        assert all(need[r] <= pod[r] for r in need), (
            f"a {deployment['name']} replica needs {need}; a {_group_of(deployment)} pod has {pod}"
        )


def test_worker_groups_hold_every_replica_at_max(service: RayService, serve_config: dict) -> None:
    # The autoscaler stops at maxReplicas pods, so Serve's max_replicas must fit below it.
    for name, group in _groups(service).items():
        pod = _ray_capacity(group)
        on_group = [d for d in _deployments(serve_config) if _group_of(d) == name]
        for r in ("CPU", "GPU"):
            demand = sum(_needs(d)[r] * _max_replicas(d) for d in on_group)
            assert demand <= pod[r] * group.maxReplicas, f"{name} group: {r} {demand} at max"


def test_cpu_replicas_keep_off_gpu_pods(service: RayService, serve_config: dict) -> None:
    # GPU pods carry a Ray node label; every replica that needs no GPU selects away from it.
    gpu_labels = _groups(service)["gpu"].labels or {}
    assert gpu_labels, "the gpu group needs a label that CPU replicas can avoid"
    for deployment in _deployments(serve_config):
        if _group_of(deployment) == "cpu":
            selector = deployment["ray_actor_options"].get("label_selector", {})
            assert any(selector.get(key) == f"!{value}" for key, value in gpu_labels.items()), (
                f"{deployment['name']} may land on GPU pods: its label_selector is {selector}"
            )
    # Nor may the CPU pods carry it: those replicas would have nowhere to go.
    assert not (_groups(service)["cpu"].labels or {}).items() & gpu_labels.items()


def _groups(service: RayService) -> dict[str, WorkerGroupSpec]:
    groups = {g.groupName: g for g in service.spec.rayClusterConfig.workerGroupSpecs}
    assert set(groups) == {"cpu", "gpu"}
    return groups


def _ray_container(group: HeadGroupSpec | WorkerGroupSpec) -> Container:
    return group.template.spec.containers[0]  # KubeRay runs Ray in a pod's first container


def _deployments(serve_config: dict) -> list[dict]:
    return [d for app in serve_config["applications"] for d in app["deployments"]]


def _needs(deployment: dict) -> dict[str, float]:
    """Ray resources of one replica (Serve's default is one CPU)."""
    options = deployment.get("ray_actor_options", {})
    return {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0)}


def _group_of(deployment: dict) -> str:
    # Replicas that ask for a GPU go to GPU pods, the others to CPU pods: the manifest gives
    # a GPU pod's Ray only the CPUs of the replica its GPU is for.
    return "gpu" if _needs(deployment)["GPU"] else "cpu"


def _max_replicas(deployment: dict) -> int:
    if "autoscaling_config" in deployment:
        return deployment["autoscaling_config"]["max_replicas"]
    return deployment.get("num_replicas", 1)


def _ray_capacity(group: WorkerGroupSpec) -> dict[str, float]:
    """What Ray counts in one pod: the container's limits, unless rayStartParams override."""
    limits = _ray_container(group).resources.limits
    return {
        "CPU": float(group.rayStartParams.get("num-cpus", _cpus(limits.get("cpu", 0)))),
        "GPU": float(group.rayStartParams.get("num-gpus", limits.get(GPU, 0))),
    }


def _cpus(quantity: Quantity) -> int:
    """A CPU quantity ("8", "500m") as Ray counts it: rounded up to whole CPUs."""
    text = str(quantity)
    return math.ceil(float(text[:-1]) / 1000 if text.endswith("m") else float(text))


def test_every_pod_runs_the_fast_path(service: RayService) -> None:
    """configs/fast-path.env is in every Ray container's environment: Serve's controller
    reads it at start, and HAProxy runs on every node (proxy_location: EveryNode)."""
    spec = service.spec.rayClusterConfig
    templates = [spec.headGroupSpec.template] + [g.template for g in spec.workerGroupSpecs]
    for template in templates:
        for container in template.spec.containers:
            env = {var.name: var.value for var in container.env}
            assert fast_path_env().items() <= env.items(), container.name


def test_the_journals_redis_is_where_the_serve_config_points(serve_config: dict) -> None:
    statefulset, service = yaml.safe_load_all((CONFIGS / "journal-redis.yaml").read_text())
    (app,) = serve_config["applications"]
    url = urlparse(app["args"]["journal"]["url"])
    assert (url.hostname, url.port) == (
        service["metadata"]["name"],
        service["spec"]["ports"][0]["port"],
    )
    (redis,) = statefulset["spec"]["template"]["spec"]["containers"]
    options = dict(zip(redis["args"][::2], redis["args"][1::2], strict=True))
    # Every write kept across a restart; no ticket ever evicted to make room.
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert statefulset["spec"]["volumeClaimTemplates"]
