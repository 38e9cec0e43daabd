"""The Serve config the benchmark deploys: configs/local.yaml, one heavy replica, and the
baselines beside it; and the accessors the parts change it with."""

from __future__ import annotations

from pathlib import Path

import yaml

from benchmarks import stage_two

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CONFIG = ROOT / "configs" / "local.yaml"
APP = stage_two.APP
RESULTS = ROOT / "results"


def bench_config(port: int) -> dict:
    """The local config with one heavy replica, and the baselines beside it.

    Stage two's autoscaling has a part of its own; elsewhere a heavy replica starting
    mid-trial (importing torch: seconds of CPU on these 2 cores) would be measured instead
    of the request path.
    """
    config = local_config()
    config["http_options"]["port"] = port
    app = main_app(config)
    deployment(app, "HeavyModel")["autoscaling_config"] |= {"min_replicas": 1, "max_replicas": 1}
    shared = {key: app[key] for key in ("logging_config", "runtime_env")}
    config["applications"] += [
        {"name": "noop", "route_prefix": "/noop", "import_path": "benchmarks.baselines:noop_app"}
        | shared,
        {
            "name": "naive",
            "route_prefix": "/naive",
            "import_path": "benchmarks.baselines:naive_app",
            "args": app["args"],
        }
        | shared,
    ]
    return config


def local_config() -> dict:
    return yaml.safe_load(LOCAL_CONFIG.read_text())


def main_app(config: dict) -> dict:
    """The multistage app of ``config`` (not a baseline, nor a part's copy)."""
    (app,) = [a for a in config["applications"] if a["name"] == APP]
    return app


def deployment(app: dict, name: str) -> dict:
    return next(d for d in app["deployments"] if d["name"] == name)
