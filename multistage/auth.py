"""Optional API-key authentication for the ``/v1`` endpoints.

The key comes from the environment of the ingress replicas or from a secret file
(a Kubernetes secret mount, say), never from the Serve config: configs live in git.
Health and the API docs stay open, so probes and humans need no key.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pydantic import BaseModel, Field

from multistage import paths
from multistage.api import ErrorBody

PROTECTED_PREFIX = f"{paths.API_PREFIX}/"


class AuthArgs(BaseModel):
    api_key_env: str = Field(
        "MULTISTAGE_API_KEY", description="Environment variable that holds the API key."
    )
    api_key_file: Path | None = Field(
        None, description="A file holding the API key; takes precedence over the variable."
    )


def load_api_key(args: AuthArgs) -> str | None:
    """The configured key; None leaves the API open. A configured file must exist."""
    if args.api_key_file is not None:
        key = args.api_key_file.read_text().strip()
        if not key:
            raise ValueError(f"API key file {args.api_key_file} is empty")
        return key
    return os.environ.get(args.api_key_env, "").strip() or None


class ApiKeyAuth:
    """ASGI middleware: ``/v1`` requests need ``Authorization: Bearer <key>`` or ``X-API-Key``."""

    def __init__(self, app, api_key: str) -> None:
        self._app = app
        self._key = api_key.encode()
        body = ErrorBody(error="unauthorized", message="a valid API key is required")
        self._refusal = body.model_dump_json().encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not _protected(scope) or self._authorized(scope):
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

    def _authorized(self, scope) -> bool:
        offered = offered_key(scope["headers"])
        # Constant time: the comparison must not tell how much of a guess was right.
        return offered is not None and hmac.compare_digest(offered, self._key)


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
