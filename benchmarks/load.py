"""One headless locust run of ``loadtests/locustfile.py``, read back as figures.

Locust runs as a child process (gevent wants a process of its own); its CSVs are
parsed here, and its CPU use is taken from the kernel's accounting of the child.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from multistage_client import paths

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"
STEP_SHAPE = LOCUSTFILE.with_name("step_shape.py")
STAGE_TWO = ("STAGE2", "time_to_result")
STAGE_ONE_SESSION = ("WS", "stage1")  # a stream session's records, as locust counts them


@dataclass(frozen=True)
class LoadResult:
    user: str
    users: int
    offered_rps: float
    achieved_rps: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    stage_two_p99_ms: float | None
    stage_two_failures: int
    # From the scorecard, counted once every user has stopped (locust's CSV is written
    # before the last followed tickets end): answers with stage one, and of their tickets
    # those followed to a completed stage two.
    stage_one_answers: int
    stage_two_completed: int
    load_generator_cpu: float  # CPU cores the load generator used, on average
    # CPU milliseconds per request by process on the service's side, over the run
    # (benchmarks/cpu_split.py), where the caller measured it.
    service_cpu_ms: dict[str, float] | None = None

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0


def run_locust(
    url: str,
    user: str,
    users: int,
    seconds: float,
    rate: float = 10.0,
    path: str = paths.PREDICT,
    history_csv: Path | None = None,
    shape: list[str] | None = None,
) -> LoadResult:
    """``users`` users of class ``user`` for ``seconds``, all started at once; or, given
    ``shape`` (step options), as many as ``loadtests/step_shape.py`` says."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "run"
        scorecard = Path(tmp) / "scorecard.json"
        command = [
            sys.executable, "-m", "locust", "--host", url,
            "-f", ",".join(map(str, [LOCUSTFILE] + ([STEP_SHAPE] if shape else []))),
            "--headless", "--only-summary", "-u", str(users), "-r", str(users),
            "-t", f"{seconds:g}s", "--stop-timeout", "15", "--csv", str(prefix),
            "--stream-rate", f"{rate:g}", "--predict-path", path, "--exit-code-on-error", "0",
            "--scorecard", str(scorecard),
            *(["--csv-full-history"] if history_csv else []), *(shape or []), user,
        ]  # fmt: skip
        log = Path(tmp) / "locust.log"
        started = time.monotonic()
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
            # wait4, not wait: it also says how much CPU the load generator used.
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        if (code := os.waitstatus_to_exitcode(status)) != 0:
            raise RuntimeError(f"locust exited {code}:\n{log.read_text()[-3000:]}")
        rows = {(r["Type"], r["Name"]): r for r in _csv(Path(f"{prefix}_stats.csv"))}
        score = json.loads(scorecard.read_text())
        if history_csv:
            history_csv.parent.mkdir(parents=True, exist_ok=True)
            history_csv.write_bytes(Path(f"{prefix}_stats_history.csv").read_bytes())
    post = rows[STAGE_ONE_SESSION if user == "StreamSessionUser" else ("POST", f"POST {path}")]
    stage_two = rows.get(STAGE_TWO)
    return LoadResult(
        user=user,
        users=users,
        offered_rps=users * rate,
        achieved_rps=round(float(post["Requests/s"]), 1),
        requests=int(post["Request Count"]),
        failures=int(post["Failure Count"]),
        p50_ms=float(post["50%"]),
        p99_ms=float(post["99%"]),
        stage_two_p99_ms=float(stage_two["99%"]) if stage_two else None,
        stage_two_failures=int(stage_two["Failure Count"]) if stage_two else 0,
        stage_one_answers=score["stage_one_answers"],
        stage_two_completed=score["stage_two_results"],
        load_generator_cpu=round((usage.ru_utime + usage.ru_stime) / wall, 2),
    )


def _csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))
