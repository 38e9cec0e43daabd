"""The multistage application: ingress -> (tabular model, ticket store -> heavy model).

    serve run configs/local.yaml

``build_app`` takes the ``args`` of the config's application. Where models live is
configuration, not code: point the args at your own XGBoost file, PyTorch factory and
weights, and record schema. Replicas, resources, autoscaling and batching are set per
deployment in the YAML.

No ``from __future__ import annotations`` here: Serve validates ``args`` against
``build_app``'s annotation at runtime.
"""

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from ray.serve import Application

from deployments.heavy import HeavyModel, Precision
from deployments.ingress import Coalescing, HttpLimits, Ingress
from deployments.tabular import TabularModel
from deployments.ticket_store import TicketPolicy, TicketStore
from multistage.api import ModelInfo
from multistage.auth import AuthArgs
from multistage.model_io import file_version
from multistage.schema import RecordSchema
from multistage.ticket_ids import new_secret


class TabularModelArgs(BaseModel):
    name: str = "defect-xgboost"
    path: Path = Field(Path("artifacts/tabular.ubj"), description="XGBoost JSON/UBJ model file.")
    version: str | None = Field(None, description="Defaults to a hash of the file.")


class HeavyModelArgs(BaseModel):
    name: str = "defect-cnn"
    factory: str = Field(
        "demo.net:build_model",
        description="'module:callable' taking (schema, **factory_kwargs), returning a Module.",
    )
    factory_kwargs: dict[str, Any] = {}
    weights: Path = Field(Path("artifacts/heavy.pt"), description="A state_dict (torch.save).")
    version: str | None = Field(None, description="Defaults to a hash of the weights file.")
    precision: Precision = "auto"
    yield_cpu: bool = Field(
        True, description="On CPU, run stage two at the lowest OS priority, behind stage one."
    )


class AppArgs(BaseModel):
    schema_path: Path = Field(Path("artifacts/schema.json"), description="The record schema.")
    tabular: TabularModelArgs = TabularModelArgs()
    heavy: HeavyModelArgs = HeavyModelArgs()
    http: HttpLimits = HttpLimits()
    tickets: TicketPolicy = TicketPolicy()
    auth: AuthArgs = AuthArgs()
    coalescing: Coalescing = Coalescing()


def build_app(args: AppArgs) -> Application:
    schema = RecordSchema.load(args.schema_path)
    tabular, heavy, models = bind_models(args, schema)
    # Signs ticket ids. Made per build: Serve rebuilds the app only when its args or code
    # change, and then replaces the ticket store (and its tickets) too.
    secret = new_secret()
    tickets = TicketStore.bind(heavy, policy=args.tickets, secret=secret)
    return Ingress.bind(
        tabular,
        tickets,
        schema=schema,
        models=models,
        limits=args.http,
        auth=args.auth,
        ticket_secret=secret,
        coalescing=args.coalescing,
    )


def bind_models(
    args: AppArgs, schema: RecordSchema
) -> tuple[Application, Application, dict[str, ModelInfo]]:
    """Stage one's and stage two's deployments, and what each model is."""
    # Relative paths are taken from where the app is built (the project root for `serve run`).
    tabular_path = args.tabular.path.resolve()
    weights = args.heavy.weights.resolve()
    models = {
        "stage_one": ModelInfo(
            name=args.tabular.name, version=args.tabular.version or file_version(tabular_path)
        ),
        "stage_two": ModelInfo(
            name=args.heavy.name, version=args.heavy.version or file_version(weights)
        ),
    }
    heavy = HeavyModel.bind(
        factory=args.heavy.factory,
        weights=str(weights),
        factory_kwargs=args.heavy.factory_kwargs,
        info=models["stage_two"],
        schema=schema,
        precision=args.heavy.precision,
        yield_cpu=args.heavy.yield_cpu,
    )
    tabular = TabularModel.bind(
        model_path=str(tabular_path), info=models["stage_one"], classes=schema.classes
    )
    return tabular, heavy, models
