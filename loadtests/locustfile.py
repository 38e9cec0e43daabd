"""Locust users that behave like the service's clients, with records of known labels.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000            # web UI
    locust -f loadtests/locustfile.py --host URL --headless -u 20 -r 5 -t 60s \\
        --csv results/locust --html results/locust.html StreamUser
    locust -f loadtests/locustfile.py,loadtests/step_shape.py --host URL --headless ...

Users (pick by class name; all by default):

- ``InteractiveUser``: posts a record, long-polls stage two's result, thinks, repeats.
- ``StreamUser``: one camera or sensor feed, ``--stream-rate`` records per second
  whatever the answers do; each result is fetched in the background, and a user that
  stops first waits for the results it is still following (every ticket is followed to
  its end). The number of these users is the number of streams.
- ``RateUser``: posts at ``--stream-rate`` and never fetches stage two: N of them
  offer N x rate requests/s of open-loop load, as long as a request takes less than
  1/rate s, the latency bound the benchmark searches under.
- ``StreamSessionUser``: one feed at ``--stream-rate`` over one stream session (a
  WebSocket, ``GET /v1/streams``): both answers of each record are pushed back on it.
  Stage one's latency is the entry ``WS stage1``; a record whose stage two is rejected
  or expired, that gets an error, or that is dropped (no answer before the session
  closed) counts as a failure there or in time-to-result.

Users at a fixed rate start at a random phase of their period, as independent feeds do:
started in step, N users would send N requests at once every period, and the last of
each burst would wait for all the others (a burst of 36 took the server 50 ms here).

Stage two's time-to-result (POST sent to result in hand) is reported as its own
entry, ``STAGE2 time_to_result``, beside the HTTP requests. At the end the run
prints a scorecard: stage one's and stage two's accuracy against the known labels,
and how often stage two revised stage one (``--scorecard FILE`` writes it as JSON).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import gevent
import websocket
from gevent.pool import Group
from locust import FastHttpUser, User, between, constant_throughput, events, task
from locust.runners import WorkerRunner

from demo.data import CLASSES, generate
from multistage_client import paths
from multistage_client.models import UNFINISHED

POLL_WAIT_S = 10


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--stream-rate", type=float, default=10.0, help="Records/s per stream.")
    parser.add_argument("--predict-path", default=paths.PREDICT, help="Where records are posted.")
    parser.add_argument("--scorecard", default="", help="Write the scorecard JSON here.")
    parser.add_argument("--records", type=int, default=512, help="Distinct records to send.")


@dataclass
class Scorecard:
    """Counts over the run; merged across locust worker processes."""

    stage_one_answers: int = 0
    stage_one_correct: int = 0
    stage_two_results: int = 0
    stage_two_correct: int = 0
    revised: int = 0  # stage two's label differs from stage one's
    stage_two_failed: int = 0

    def add(self, other: dict) -> None:
        for name in other:
            setattr(self, name, getattr(self, name) + other[name])

    def summary(self) -> dict:
        def share(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        return asdict(self) | {
            "stage_one_accuracy": share(self.stage_one_correct, self.stage_one_answers),
            "stage_two_accuracy": share(self.stage_two_correct, self.stage_two_results),
            "revision_rate": share(self.revised, self.stage_two_results),
        }


SCORE = Scorecard()
_records: itertools.cycle | None = None


@events.init.add_listener
def _load_records(environment, **_) -> None:
    global _records
    records = environment.parsed_options.records if environment.parsed_options else 512
    data = generate(records, seed=2024)  # not the training seed: records the models never saw
    _records = itertools.cycle(
        [(data.record(i), CLASSES[label]) for i, label in enumerate(data.labels)]
    )


class ServiceUser(FastHttpUser):
    abstract = True
    # Long-polls from one user overlap: a stream fetches each result in the background.
    concurrency = 64
    # How long a stopping user waits for the results it is still following.
    FOLLOW_AT_STOP_S = 30

    def post_record(self) -> tuple[dict, str, float] | None:
        """Post the next record: (the answer, its true label, when it was sent) or None."""
        body, label = next(_records)
        sent = time.perf_counter()
        path = self.environment.parsed_options.predict_path
        with self.client.post(path, json=body, name=f"POST {path}", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return None
            answer = r.json()
        if "stage_one" not in answer:  # a baseline that answers no stages
            return None
        SCORE.stage_one_answers += 1
        SCORE.stage_one_correct += answer["stage_one"]["label"] == label
        return answer, label, sent

    def follow_stage_two(self, answer: dict, label: str, sent: float) -> None:
        """Long-poll the ticket to its end; report time-to-result and score it."""
        url = answer["stage_two"].get("url")
        if url is None:
            self._stage_two_failed(sent, f"no ticket: {answer['stage_two']['status']}")
            return
        while True:
            with self.client.get(
                url,
                params={"wait": POLL_WAIT_S},
                name=f"GET {paths.PREDICTION}?wait",
                catch_response=True,
            ) as r:
                if r.status_code not in (200, 202):
                    r.failure(f"{r.status_code}: {r.text[:200]}")
                    self._stage_two_failed(sent, f"HTTP {r.status_code}")
                    return
                view = r.json()
            if view["status"] not in UNFINISHED:
                break
        if view["status"] != "completed":
            self._stage_two_failed(sent, f"{view['status']}: {_error_code(view)}")
            return
        _fire_time_to_result(self.environment, sent, None)
        SCORE.stage_two_results += 1
        SCORE.stage_two_correct += view["result"]["label"] == label
        SCORE.revised += view["result"]["label"] != answer["stage_one"]["label"]

    def _stage_two_failed(self, sent: float, reason: str) -> None:
        SCORE.stage_two_failed += 1
        _fire_time_to_result(self.environment, sent, RuntimeError(reason))


class InteractiveUser(ServiceUser):
    """A person at an app: submits, waits for the better answer, reads it, submits again."""

    wait_time = between(0.5, 2.0)

    @task
    def predict_and_wait(self) -> None:
        posted = self.post_record()
        if posted is not None:
            self.follow_stage_two(*posted)


class FixedRate:
    """For a user at ``--stream-rate`` requests/s, starting at a random phase of its period."""

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0, 1 / self.environment.parsed_options.stream_rate))

    def wait_time(self) -> float:
        return constant_throughput(self.environment.parsed_options.stream_rate)(self)


class FixedRateUser(FixedRate, ServiceUser):
    abstract = True


class StreamUser(FixedRateUser):
    """One feed at a fixed rate; results are fetched without holding up the next record."""

    def on_start(self) -> None:
        self._following = Group()
        super().on_start()

    def on_stop(self) -> None:
        self._following.join(timeout=self.FOLLOW_AT_STOP_S)

    @task
    def frame(self) -> None:
        posted = self.post_record()
        if posted is not None:
            self._following.spawn(self.follow_stage_two, *posted)


class RateUser(FixedRateUser):
    """Open-loop stage-one load: posts at a fixed rate, never fetches stage two."""

    @task
    def post(self) -> None:
        self.post_record()


class StreamSessionUser(FixedRate, User):
    """One feed over one stream session: records at a fixed rate, answers pushed back."""

    FOLLOW_AT_STOP_S = 30

    def on_start(self) -> None:
        rate = self.environment.parsed_options.stream_rate
        url = f"{self.host.replace('http', 'ws', 1)}{paths.STREAMS}?frame_interval_s={1 / rate:g}"
        self._ws = websocket.create_connection(url, timeout=60)
        json.loads(self._ws.recv())  # ready
        self._seqs = itertools.count()
        self._open: dict[int, tuple[float, str, str | None]] = {}  # seq -> sent, label, stage 1
        self._reader = gevent.spawn(self._read_forever)
        super().on_start()

    def on_stop(self) -> None:
        deadline = time.monotonic() + self.FOLLOW_AT_STOP_S
        while self._open and time.monotonic() < deadline and not self._reader.dead:
            gevent.sleep(0.05)
        self._reader.kill()
        self._ws.close()
        for sent, _, _ in self._open.values():  # the session ended before their answers
            SCORE.stage_two_failed += 1
            dropped = RuntimeError("dropped: no answer before the session closed")
            _fire_time_to_result(self.environment, sent, dropped)

    @task
    def frame(self) -> None:
        body, label = next(_records)
        seq = next(self._seqs)
        self._open[seq] = (time.perf_counter(), label, None)
        self._ws.send(json.dumps({**body, "seq": seq}))

    def _read_forever(self) -> None:
        while True:
            try:
                message = json.loads(self._ws.recv())
            except websocket.WebSocketException:
                return  # closed: what is still open counts as dropped at stop
            sent, label, stage_one = self._open[message["seq"]]
            kind = message["type"]
            if kind == "stage1":
                self._stage_one(message, sent, label)
                continue
            del self._open[message["seq"]]
            if kind == "error":
                self._fire("stage1", sent, RuntimeError(message["message"]))
            elif kind == "stage2":
                _fire_time_to_result(self.environment, sent, None)
                result = message["stage_two"]["result"]["label"]
                SCORE.stage_two_results += 1
                SCORE.stage_two_correct += result == label
                SCORE.revised += result != stage_one
            else:
                SCORE.stage_two_failed += 1
                reason = f"{kind}: {_error_code(message['stage_two'])}"
                _fire_time_to_result(self.environment, sent, RuntimeError(reason))

    def _stage_one(self, message: dict, sent: float, label: str) -> None:
        self._fire("stage1", sent, None)
        predicted = message["stage_one"]["label"]
        self._open[message["seq"]] = (sent, label, predicted)
        SCORE.stage_one_answers += 1
        SCORE.stage_one_correct += predicted == label

    def _fire(self, name: str, sent: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - sent) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )


def _fire_time_to_result(environment, sent: float, exception: Exception | None) -> None:
    environment.events.request.fire(
        request_type="STAGE2",
        name="time_to_result",
        response_time=(time.perf_counter() - sent) * 1000,
        response_length=0,
        exception=exception,
        context={},
    )


def _error_code(stage_two: dict) -> str | None:
    """The stable code of why a ticket (or a refused record) has no stage two."""
    return (stage_two.get("error") or {}).get("error")


@events.report_to_master.add_listener
def _send_scorecard(client_id, data: dict) -> None:
    data["scorecard"] = asdict(SCORE)
    for field in fields(SCORE):
        setattr(SCORE, field.name, 0)  # each report carries only what is new


@events.worker_report.add_listener
def _merge_scorecard(client_id, data: dict) -> None:
    SCORE.add(data.get("scorecard", {}))


@events.quitting.add_listener
def _report_scorecard(environment, **_) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # the master reports for everyone
    summary = SCORE.summary()
    print("scorecard:", json.dumps(summary))
    if path := environment.parsed_options.scorecard:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2))
