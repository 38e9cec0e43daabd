"""Optional API-key authentication for the ``/v1`` endpoints, naming the request's tenant.

The key comes from the environment of the ingress replicas or from a secret file
(a Kubernetes secret mount, say), never from the Serve config: configs live in git. A
tenants file names several tenants by their keys' hashes (``multistage/http/tenants.py``).
Health and the API docs stay open, so probes and humans need no key.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field
from starlette.routing import BaseRoute, Match

from multistage.http.tenants import Tenants, TenantsFromFile
from multistage.tickets.ids import DEFAULT_TENANT
from multistage_client import paths
from multistage_client.models import ErrorBody

PROTECTED_PREFIX = f"{paths.API_PREFIX}/"


class AuthArgs(BaseModel):
    api_key_env: str = Field(
        "MULTISTAGE_API_KEY", description="Environment variable that holds the API key."
    )
    api_key_file: Path | None = Field(
        None, description="A file holding the API key; takes precedence over the variable."
    )
    tenants_file: Path | None = Field(
        None,
        description="A JSON file naming each tenant and its key's SHA-256, read again when it "
        "changes; takes precedence over the key.",
    )


def load_tenants(args: AuthArgs) -> Tenants | None:
    """The configured tenants; None leaves the API open. A configured file must exist."""
    if args.tenants_file is not None:
        return TenantsFromFile(args.tenants_file)
    if args.api_key_file is not None:
        key = args.api_key_file.read_text().strip()
        if not key:
            raise ValueError(f"API key file {args.api_key_file} is empty")
        return Tenants.single(key)
    key = os.environ.get(args.api_key_env, "").strip()
    return Tenants.single(key) if key else None


def tenant_of(scope: dict) -> str:
    """The tenant a request or session was authenticated as (the default one when the API
    is open)."""
    return scope.get("state", {}).get("tenant", DEFAULT_TENANT)


def authenticated_as(scope: dict, tenant: str) -> None:
    scope.setdefault("state", {})["tenant"] = tenant


class ApiKeyAuth:
    """ASGI middleware: ``/v1`` requests need ``Authorization: Bearer <key>`` or ``X-API-Key``
    of a tenant, and carry that tenant on (``tenant_of``)."""

    def __init__(self, app, tenants: Tenants, routes: list[BaseRoute]) -> None:
        self._app = app
        self._tenants = tenants
        self._routes = routes
        body = ErrorBody(error="unauthorized", message="a valid API key is required")
        self._refusal = body.model_dump_json().encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not _protected(scope) or not self._routed(scope):
            return await self._app(scope, receive, send)
        tenant = self._tenants.tenant_of(offered_key(scope["headers"]))
        if tenant is not None:
            authenticated_as(scope, tenant)
            return await self._app(scope, receive, send)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="multistage"'),
                    (b"content-length", str(len(self._refusal)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._refusal})

    def _routed(self, scope) -> bool:
        """Whether a route takes the request: only one would run a handler. Others get the
        router's 404 or 405, which say nothing the API's documentation does not."""
        return any(route.matches(scope)[0] is Match.FULL for route in self._routes)


def offered_key(raw_headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request offers: ``X-API-Key``, or ``Authorization: Bearer``; None if neither."""
    headers = dict(raw_headers)
    offered = headers.get(b"x-api-key")
    bearer = headers.get(b"authorization", b"")
    if offered is None and bearer[:7].lower() == b"bearer ":
        offered = bearer[7:].strip()
    return offered


def _protected(scope) -> bool:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.startswith(PROTECTED_PREFIX)
