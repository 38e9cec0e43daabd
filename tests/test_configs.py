"""The shipped Serve configs are valid and name the deployments the graph builds."""

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from graphs.multistage import AppArgs
from multistage.journal import JournalArgs

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEPLOYMENTS = {"Ingress", "TicketStore", "HeavyModel"}


def _app(name: str) -> dict:
    config = yaml.safe_load((CONFIGS / name).read_text())
    ServeDeploySchema.model_validate(config)
    (app,) = config["applications"]
    AppArgs.model_validate(app["args"])
    return app


@pytest.mark.parametrize("name", ["local.yaml", "gpu.yaml"])
def test_config_is_valid_and_complete(name):
    app = _app(name)
    assert app["import_path"] == "graphs.multistage:build_app"
    options = {d["name"]: d for d in app["deployments"]}
    assert set(options) == DEPLOYMENTS
    # Tickets live in one store replica's memory unless a durable journal holds them.
    journal = JournalArgs.model_validate(app["args"].get("journal", {}))
    assert journal.durable or options["TicketStore"]["num_replicas"] == 1
    if options["TicketStore"]["num_replicas"] > 1:
        assert journal.backend == "redis"  # replicas on many nodes share no file
    heavy = options["HeavyModel"]
    # Calls in a replica, times records per call: more than a batch, so one can fill while
    # another runs.
    per_call = app["args"]["ticket_policy"]["records_per_call"]
    assert heavy["max_ongoing_requests"] * per_call > heavy["user_config"]["max_batch_size"]
    assert heavy["autoscaling_config"]["min_replicas"] >= 1
    # Stage two scales on records: its policy counts a queued call as records_per_call.
    policy = heavy["autoscaling_config"]["policy"]
    assert policy["policy_function"] == "multistage.autoscaling:RecordsBacklogPolicy"
    assert policy["policy_kwargs"]["records_per_call"] == per_call


def test_local_config_fits_two_cores_without_a_gpu():
    options = {d["name"]: d for d in _app("local.yaml")["deployments"]}
    replicas = {
        name: d.get("num_replicas") or d["autoscaling_config"]["max_replicas"]
        for name, d in options.items()
    }
    cpus = sum(replicas[n] * options[n]["ray_actor_options"]["num_cpus"] for n in options)
    assert cpus <= 2
    assert all("num_gpus" not in d["ray_actor_options"] for d in options.values())


def test_gpu_config_puts_stage_two_on_gpus():
    options = {d["name"]: d for d in _app("gpu.yaml")["deployments"]}
    assert options["HeavyModel"]["ray_actor_options"]["num_gpus"] == 1
    assert all(
        "num_gpus" not in options[n]["ray_actor_options"] for n in DEPLOYMENTS - {"HeavyModel"}
    )
