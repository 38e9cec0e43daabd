"""The multistage application: ingress (with stage one) -> ticket store -> heavy model.

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
from deployments.ingress import Ingress
from deployments.ticket_store import TicketStore
from multistage.config import HttpLimits, StoreCalls, StreamLimits, TicketPolicy
from multistage.http.auth import AuthArgs
from multistage.journal import JournalArgs
from multistage.models.io import file_version
from multistage.models.schema import RecordSchema
from multistage.tickets.ids import SigningArgs, load_secret
from multistage_client.models import ModelInfo


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
    ticket_policy: TicketPolicy = TicketPolicy()
    journal: JournalArgs = JournalArgs()
    store_calls: StoreCalls = StoreCalls()
    streams: StreamLimits = StreamLimits()
    auth: AuthArgs = AuthArgs()
    signing: SigningArgs = SigningArgs()


def build_app(args: AppArgs) -> Application:
    schema = RecordSchema.load(args.schema_path)
    models = model_infos(args)
    # Signs ticket ids. Unless configured, made per build: Serve rebuilds the app only when
    # its args or code change, and then replaces the ticket store (and its tickets) too.
    secret = load_secret(args.signing)
    heavy = bind_heavy(args, schema, models)
    # Relative paths are taken from where the app is built (the project root for `serve run`).
    journal = args.journal.model_copy(update={"path": args.journal.path.resolve()})
    store = TicketStore.bind(heavy, policy=args.ticket_policy, secret=secret, journal=journal)
    return Ingress.bind(
        store,
        stage_one_path=str(args.tabular.path.resolve()),
        schema=schema,
        models=models,
        limits=args.http,
        store_calls=args.store_calls,
        ticket_policy=args.ticket_policy,
        streams=args.streams,
        auth=args.auth,
        ticket_secret=secret,
    )


def model_infos(args: AppArgs) -> dict[str, ModelInfo]:
    """What each model is: its name, and its version (by default, the file's hash)."""
    # Relative paths are taken from where the app is built (the project root for `serve run`).
    tabular = args.tabular
    heavy = args.heavy
    return {
        "stage_one": ModelInfo(
            name=tabular.name, version=tabular.version or file_version(tabular.path.resolve())
        ),
        "stage_two": ModelInfo(
            name=heavy.name, version=heavy.version or file_version(heavy.weights.resolve())
        ),
    }


def bind_heavy(args: AppArgs, schema: RecordSchema, models: dict[str, ModelInfo]) -> Application:
    """Stage two's deployment."""
    return HeavyModel.bind(
        factory=args.heavy.factory,
        weights=str(args.heavy.weights.resolve()),
        factory_kwargs=args.heavy.factory_kwargs,
        info=models["stage_two"],
        schema=schema,
        precision=args.heavy.precision,
        yield_cpu=args.heavy.yield_cpu,
    )
