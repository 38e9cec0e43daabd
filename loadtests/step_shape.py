"""A step load: more users every step, to find where the latency bound breaks.

    locust -f loadtests/locustfile.py,loadtests/step_shape.py --host URL --headless \\
        --step-users 5 --step-seconds 30 --steps 8 --csv results/step StreamUser

Users (of the classes named on the command line) grow by ``--step-users`` every
``--step-seconds``, for ``--steps`` steps; then the run ends. Locust's CSVs (with
``--csv-full-history``) show where p99 crossed the bound.
"""

from __future__ import annotations

from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--step-users", type=int, default=5, help="Users added each step.")
    parser.add_argument("--step-seconds", type=float, default=30.0, help="Length of a step.")
    parser.add_argument("--steps", type=int, default=8, help="Steps before the run ends.")


class StepLoadShape(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        step = int(self.get_run_time() // options.step_seconds)
        if step >= options.steps:
            return None
        users = (step + 1) * options.step_users
        return users, users  # spawn each step's users at once
