"""What one Serve call costs, by transport: a caller replica makes sequential calls to a
callee replica that echoes a submission-sized payload, and both report their own CPU.

Deployed by ``make bench``'s ``calls`` part as two apps, one with Serve's router on the
replica's main loop (as the configs run it) and one with it in a thread of its own.
No ``from __future__ import annotations``: Serve validates app args at runtime.
"""

import time

import numpy as np
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse

from multistage.models.records import Record
from multistage.ray_private import by_value
from multistage.tickets.wire import Submission

# A call carrying a few submissions, as the ingress's shared calls do under load.
PAYLOAD = [
    Submission(
        "x" * 48,
        Record(np.zeros(5, np.float32), np.zeros((32, 32, 1), np.uint8)),
        deadline=None,
        stage_one_label="ok",
    )
] * 4


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Callee:
    async def echo(self, payload: list) -> int:
        return len(payload)

    async def cpu_s(self) -> float:
        return time.process_time()


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Caller:
    def __init__(self, callee: DeploymentHandle) -> None:
        self._handles = {"actor_call": callee, "grpc": by_value(callee)}

    async def __call__(self, request: Request) -> JSONResponse:
        """``?transport=actor_call|grpc&calls=N``: CPU ms per call on each side."""
        handle = self._handles[request.query_params["transport"]]
        calls = int(request.query_params.get("calls", "300"))
        for _ in range(20):  # warm the route
            await handle.echo.remote(PAYLOAD)
        callee_before = await handle.cpu_s.remote()
        caller_before, started = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await handle.echo.remote(PAYLOAD)
        wall, caller = time.perf_counter() - started, time.process_time() - caller_before
        callee = await handle.cpu_s.remote() - callee_before
        per_call = {"wall": wall, "caller_cpu": caller, "callee_cpu": callee}
        return JSONResponse({k: round(v * 1000 / calls, 3) for k, v in per_call.items()})


def call_cost_app(args: dict) -> Application:
    return Caller.bind(Callee.bind())
