"""The ingress's HTTP surface: routes, errors, who is calling, health, event streams.

- ``app``: the routes and their OpenAPI documentation (``build_http_app``), handled by an
  ``Api`` (the Ingress deployment is one);
- ``requests``: a request's body, bounded, and who asked (``Asker``);
- ``responses``: JSON responses straight from their models, a ticket's by its status;
- ``errors``: every error as a JSON ``ErrorBody`` naming what was wrong, and its status;
- ``auth``: the optional API key that names a request's tenant;
- ``tenants``: the tenants file, keys by hash, read again when it changes;
- ``health``: ``GET /healthz``, read from Serve's controller at most once per period;
- ``sse``: Server-Sent Events framing.
"""

from multistage.http.app import Api, build_http_app
from multistage.http.auth import ApiKeyAuth, AuthArgs
from multistage.http.errors import (
    BodyTooLarge,
    Overloaded,
    RetryLater,
    TicketStoreUnavailable,
    UnknownTicket,
    UnsupportedMediaType,
)
from multistage.http.health import Health
from multistage.http.tenants import Tenants, TenantsFromFile

__all__ = [
    "Api",
    "ApiKeyAuth",
    "AuthArgs",
    "BodyTooLarge",
    "Health",
    "Overloaded",
    "RetryLater",
    "Tenants",
    "TenantsFromFile",
    "TicketStoreUnavailable",
    "UnknownTicket",
    "UnsupportedMediaType",
    "build_http_app",
]
