"""The client installed alone, in a fresh virtual environment, against the live service: the
Python client and the ``multistage`` command line, and each way a command can go wrong
giving one line and its exit status."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from support import cancel_all, fill_saturated_queue

from ops.ports import free_port

SERVER_STACK = {"ray", "torch", "numpy", "xgboost", "pandas"}


@pytest.fixture(scope="module")
def client_bin(tmp_path_factory) -> Path:
    """The bin folder of a new venv holding only the client's distribution and its needs."""
    root = tmp_path_factory.mktemp("client-alone")
    source = root / "client"
    shutil.copytree(
        ROOT / "client", source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True)
    pip = [root / "venv" / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", str(source)], check=True)
    return root / "venv" / "bin"


@pytest.fixture
def cli(client_bin, serve_url):
    def run(*args: str, stdin: str | None = None, url: str = serve_url):
        command = [client_bin / "multistage", "--url", url, *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)

    return run


def _one_line(run: subprocess.CompletedProcess) -> str:
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("multistage: "), run.stderr
    return lines[0]


def test_installed_alone_it_brings_nothing_of_the_server(client_bin):
    listed = subprocess.run(
        [client_bin / "python", "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "multistage-client" in names
    assert not names & SERVER_STACK, sorted(names & SERVER_STACK)


def test_the_python_client_alone_predicts_and_follows(client_bin, serve_url):
    script = (
        "import sys\n"
        "from multistage_client import Client\n"
        "with Client(sys.argv[1]) as client:\n"
        "    answer = client.predict(client.models().example_request)\n"
        "    print(answer.stage_one.model.name, answer.result(timeout=60).model.name)\n"
    )
    run = subprocess.run(
        [client_bin / "python", "-c", script, serve_url], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["defect-xgboost", "defect-cnn"]


def test_example_piped_into_predict_prints_both_stages(cli):
    example = cli("example")
    assert example.returncode == 0, example.stderr
    run = cli("predict", "-", stdin=example.stdout)
    assert run.returncode == 0, run.stderr
    labels = [line.split()[0] for line in run.stdout.splitlines()]
    assert labels == ["stage", "ticket", "stage"], run.stdout
    assert "defect-cnn" in run.stdout.splitlines()[2]


def test_no_follow_then_get_follow_and_a_cancel_too_late(cli, example):
    run = cli("predict", "-", "--no-follow", "--json", stdin=json.dumps(example))
    assert run.returncode == 0, run.stderr
    ticket = json.loads(run.stdout)["ticket"]
    followed = cli("follow", ticket, "--json")
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout)["status"] == "completed"
    assert cli("get", ticket).returncode == 0
    too_late = cli("cancel", ticket)
    assert too_late.returncode == 3
    assert "already ended: completed" in _one_line(too_late)


def test_cancel_a_queued_ticket(cli, serve_url, example, http):
    tickets = fill_saturated_queue(serve_url, example)
    try:
        run = cli("cancel", tickets[-1], "--json", url=f"{serve_url}/saturated")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["status"] == "canceled"
    finally:
        cancel_all(http, "/saturated", tickets)


def test_stream_prints_both_answers_of_each_record(cli, example, tmp_path):
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(example) for _ in range(3)) + "\n")
    run = cli("stream", str(feed), "--interval", "0.05")
    assert run.returncode == 0, run.stderr
    messages = [json.loads(line) for line in run.stdout.splitlines()]
    by_seq = {seq: [m["type"] for m in messages if m["seq"] == seq] for seq in (0, 1, 2)}
    assert by_seq == {seq: ["stage1", "stage2"] for seq in (0, 1, 2)}


def test_each_failure_is_one_line_and_its_exit_status(cli, serve_url, example, tmp_path, http):
    not_json = tmp_path / "not.json"
    not_json.write_text("{nope")
    bad_record = json.dumps({**example, "shift": "never"})
    expired = cli("predict", "-", "--deadline", "0.000001", stdin=json.dumps(example))
    cases = {
        "invalid record": (cli("predict", "-", stdin=bad_record), 3, "shift"),
        "missing file": (cli("predict", str(tmp_path / "none.json")), 2, "cannot read"),
        "not JSON": (cli("predict", str(not_json)), 2, "is not JSON"),
        "stage two expired": (expired, 1, "deadline_passed"),
        "refused key": (cli("models", "--api-key", "wrong", url=f"{serve_url}/guarded"), 5, ""),
        "service down": (cli("models", url=f"http://127.0.0.1:{free_port()}"), 6, "reach"),
        "unknown ticket": (cli("get", "no-such-ticket"), 3, "404"),
    }
    for name, (run, status, words) in cases.items():
        assert (run.returncode, "Traceback" in run.stderr) == (status, False), (name, run.stderr)
        assert words in _one_line(run), name


def test_not_ended_within_the_timeout_is_exit_4(cli, serve_url, example, http):
    tickets = fill_saturated_queue(serve_url, example)
    try:
        run = cli("follow", tickets[-1], "--timeout", "0.5", url=f"{serve_url}/saturated")
        assert run.returncode == 4
        assert f"multistage follow {tickets[-1]}" in _one_line(run)
    finally:
        cancel_all(http, "/saturated", tickets)
