"""The locustfile runs headless against the live service without a single error.

A few users for a few seconds: not a measurement, a guard that the load tests (and the
step shape the benchmark uses) keep working as the API changes.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

LOADTESTS = Path(__file__).resolve().parent.parent / "loadtests"


def _locust(serve_url: str, tmp_path: Path, *args: str) -> dict[str, dict]:
    """Run locust; fail on any failed request; the stats rows by name."""
    prefix = tmp_path / "run"
    command = [
        sys.executable, "-m", "locust", "--headless", "--host", serve_url, "--only-summary",
        "--csv", str(prefix), "--scorecard", str(tmp_path / "scorecard.json"), "--records", "32",
        *args,
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    # Locust exits 1 when any request failed.
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def test_every_user_type_runs_without_errors(serve_url, tmp_path):
    stats = _locust(
        serve_url, tmp_path, "-f", str(LOADTESTS / "locustfile.py"), "-u", "4", "-r", "4",
        "-t", "6s", "--stop-timeout", "10", "InteractiveUser", "StreamUser", "RateUser",
        "StreamSessionUser",
    )  # fmt: skip
    assert int(stats["POST /v1/predict"]["Request Count"]) > 10
    # A stream session's records: stage one pushed back on its WebSocket.
    assert int(stats["stage1"]["Request Count"]) > 10
    # Stage two's time-to-result is reported as its own entry.
    assert int(stats["time_to_result"]["Request Count"]) > 0
    scorecard = json.loads((tmp_path / "scorecard.json").read_text())
    assert scorecard["stage_two_results"] > 0
    assert 0 <= scorecard["revision_rate"] <= 1
    assert scorecard["stage_one_accuracy"] > 0.5  # records of known labels, scored


def test_step_shape_grows_the_users(serve_url, tmp_path):
    files = f"{LOADTESTS / 'locustfile.py'},{LOADTESTS / 'step_shape.py'}"
    stats = _locust(
        serve_url, tmp_path, "-f", files, "--step-users", "1", "--step-seconds", "3",
        "--steps", "2", "--csv-full-history", "RateUser",
    )  # fmt: skip
    assert int(stats["POST /v1/predict"]["Request Count"]) > 0
    with open(tmp_path / "run_stats_history.csv") as f:
        users = {int(row["User Count"]) for row in csv.DictReader(f)}
    assert {1, 2} <= users
