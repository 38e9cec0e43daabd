"""The client imports nothing of the server: installed alone (its own distribution,
``client/``), it needs only its own few dependencies."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_STACK = {
    "ray",
    "torch",
    "numpy",
    "xgboost",
    "pandas",
    "fastapi",
    "starlette",
    "multistage",
}


def test_importing_the_client_loads_nothing_of_the_server():
    # A fresh interpreter: this one has loaded whatever other tests needed.
    code = "import json, sys, multistage_client; print(json.dumps(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = {name.split(".")[0] for name in json.loads(run.stdout)}
    assert "multistage_client" in loaded
    assert not loaded & SERVER_STACK, sorted(loaded & SERVER_STACK)
