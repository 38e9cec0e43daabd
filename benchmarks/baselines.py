"""The baselines the benchmark sets the service against, each as light as it honestly can be.

- ``noop_app``: a Ray Serve deployment that reads the body and answers a fixed JSON:
  what Serve's proxy and one replica cost, with no model and no second hop.
- ``naive_app``: the single-stage endpoint users would otherwise write: one ingress
  that runs stage one and awaits stage two's deployment before it answers.
- ``bare_starlette``: the XGBoost model in a plain Starlette app under uvicorn, no Ray
  (``python -m benchmarks.baselines MODEL_PATH SCHEMA_PATH PORT``).

No ``from __future__ import annotations``: Serve validates app args against the
builders' annotations at runtime.
"""

import sys

import numpy as np
import uvicorn
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphs.multistage import AppArgs, bind_heavy, model_infos
from multistage.models.io import load_booster, xgboost_probabilities
from multistage.models.records import RecordParser
from multistage.models.schema import RecordSchema
from multistage.models.stage_one import StageOneModel
from multistage_client import paths


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
class NoOp:
    async def __call__(self, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})


def noop_app(args: dict) -> Application:
    return NoOp.bind()


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
class NaiveIngress:
    """Parses the record, runs stage one, then awaits stage two before answering."""

    def __init__(self, heavy: DeploymentHandle, stage_one_path: str, schema: RecordSchema, info):
        self._heavy = heavy
        self._stage_one = StageOneModel(stage_one_path, info, schema.classes)
        self._parser = RecordParser(schema)

    async def __call__(self, request: Request) -> JSONResponse:
        record = self._parser.parse(await request.body())
        (first,) = self._stage_one.predict(record.features[None, :])
        second = await self._heavy.predict.remote(record)
        return JSONResponse({"stage_one": first.model_dump(), "stage_two": second.model_dump()})


def naive_app(args: AppArgs) -> Application:
    """The multistage app's two models behind one endpoint that waits for both."""
    schema = RecordSchema.load(args.schema_path)
    # Stage two is on this endpoint's critical path: it must not run behind anything.
    args = args.model_copy(update={"heavy": args.heavy.model_copy(update={"yield_cpu": False})})
    models = model_infos(args)
    heavy = bind_heavy(args, schema, models)
    path = str(args.tabular.path.resolve())
    return NaiveIngress.bind(heavy, path, schema, models["stage_one"])


def bare_starlette(model_path: str, schema_path: str) -> Starlette:
    booster = load_booster(model_path, threads=1)
    parser = RecordParser(RecordSchema.load(schema_path))

    async def predict(request: Request) -> JSONResponse:
        record = parser.parse(await request.body())
        (probabilities,) = xgboost_probabilities(booster, record.features[None, :])
        return JSONResponse({"scores": np.round(probabilities, 6).tolist()})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route(paths.PREDICT, predict, methods=["POST"]), Route(paths.HEALTHZ, healthz)]
    )


if __name__ == "__main__":
    model, schema, port = sys.argv[1:4]
    uvicorn.run(
        bare_starlette(model, schema), host="127.0.0.1", port=int(port), log_level="warning"
    )
