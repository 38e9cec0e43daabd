"""Every private Ray API the project uses, in one place. Checked against Ray 2.60.0.

Each use says why the public API can't do it. ``tests/test_ray_private.py`` fails, naming
the symbol, when a Ray upgrade removes or renames one (``SYMBOLS``), and likewise for
the ``RAY_*`` environment variables the configs set.

How replicas call each other is chosen here too: every Serve call costs its caller and
its callee CPU whatever it carries. Calls whose results are read at once travel by value
over gRPC, which measured about half the CPU of Ray's actor calls here (``make bench``'s
cpu part). The stage-two call must stay by reference: its ``ObjectRef`` is the ticket's
result, held by the ticket store and read later, and by-value results cannot become refs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponse

CHECKED_ON = "2.60.0"
# Serve calls a deployment class's method of this name, after ``__init__``, for the ASGI
# app when ``serve.ingress()`` is given none (``serve/_private/replica.py``).
BUILD_ASGI_APP_METHOD = "__serve_build_asgi_app__"

T = TypeVar("T", bound=type)


def by_value(handle: DeploymentHandle) -> DeploymentHandle:
    """The handle for calls whose results are awaited and used at once (gRPC transport).

    ``_by_reference=False``: the public switch (``RAY_SERVE_USE_GRPC_BY_DEFAULT``) is
    per process, and the stage-two call, made from the same replica, must stay by
    reference.
    """
    return handle.options(_by_reference=False)


async def object_ref_once_accepted(response: DeploymentResponse) -> ray.ObjectRef:
    """The call's result as an ``ObjectRef``, once a replica has accepted the call.

    ``_to_object_ref`` (a ``DeveloperAPI``): awaiting the response gives the value, not a
    reference the ticket store can hold for later reads by any ingress replica, and
    nothing public says when a replica took the call (the ticket's ``started_at``).
    Waits for a replica to take the call: never await this on a client's request path.
    """
    return await response._to_object_ref()


def ingress_built_per_replica(build: Callable[[Any], Any]) -> Callable[[T], T]:
    """``serve.ingress`` for a class whose ASGI app ``build(self)`` makes on each replica,
    after ``__init__``.

    The app depends on the replica's arguments (its routes' request models come from the
    record schema), so it can't be built at import time for ``serve.ingress(app)``;
    ``serve.ingress()`` without an app calls the class's ``__serve_build_asgi_app__``
    (named in its 2.60 docstring, not in Serve's API reference).
    """

    def decorate(cls: T) -> T:
        setattr(cls, BUILD_ASGI_APP_METHOD, build)
        return serve.ingress()(cls)

    return decorate


def serve_start(**options: Any) -> Any:
    """Serve's controller, started (or found) with ``options``: what ``serve run <config>``
    calls before deploying the config's applications (``ray.serve._private.api``).

    The public ``serve.run`` takes built applications, not a config file's content, and
    ``serve deploy`` needs a dashboard, which tests and benchmarks run without.
    """
    return _serve_api().serve_start(**options)


def _serve_api() -> ModuleType:
    # Imported when used: a Ray that moved it fails here, naming it, not at import.
    return importlib.import_module("ray.serve._private.api")


def _handle_option(name: str) -> object:
    parameters = inspect.signature(DeploymentHandle.options).parameters
    if name not in parameters:
        raise AttributeError(f"DeploymentHandle.options takes no {name!r}")
    return parameters[name]


def _build_method_serve_calls() -> str:
    called = importlib.import_module("ray.serve._private.replica").SERVE_BUILD_ASGI_APP_METHOD
    if called != BUILD_ASGI_APP_METHOD:
        raise AttributeError(f"Serve calls {called!r} for the app, not {BUILD_ASGI_APP_METHOD!r}")
    return called


# Each private symbol, and how to reach it: a test reaches each, so a Ray upgrade that
# removed or renamed one fails there, by name, not in a replica at run time.
SYMBOLS: dict[str, Callable[[], object]] = {
    "DeploymentHandle.options(_by_reference=...)": lambda: _handle_option("_by_reference"),
    "DeploymentResponse._to_object_ref": lambda: DeploymentResponse._to_object_ref,
    "ray.serve._private.replica.SERVE_BUILD_ASGI_APP_METHOD": _build_method_serve_calls,
    "ray.serve._private.api.serve_start": lambda: _serve_api().serve_start,
}
