"""What the ingress reads of a request besides its record: the body, bounded, and who
asked."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from multistage.http.auth import tenant_of
from multistage.http.errors import BodyTooLarge, UnsupportedMediaType
from multistage.http.tenants import Tenants
from multistage_client import paths

_REQUEST_ID_KEY = paths.REQUEST_ID_HEADER.lower().encode()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused unread if declared as other than JSON (none declared is taken as
    JSON), and as soon as it is known to exceed ``limit`` bytes."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(content_type)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Asker:
    """Who asked for predictions, as their tickets record it: read once per request."""

    root: str  # the application's route prefix: where its tickets are read
    request_id: str  # the HTTP request (X-Request-ID), named in the store's log lines
    tenant: str  # whose tickets they are
    tenant_limit: int | None  # the tenant's cap on its unfinished tickets, if it has one

    @classmethod
    def of(cls, scope: dict, tenants: Tenants | None) -> Asker:
        request_id = dict(scope["headers"]).get(_REQUEST_ID_KEY, b"").decode()
        tenant = tenant_of(scope)
        limit = tenants.limit_of(tenant) if tenants is not None else None
        return cls(scope.get("root_path", ""), request_id, tenant, limit)
