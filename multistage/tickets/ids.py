"""Ticket ids: 128 random bits, the time of issue, its tenant's mark, and a tag only this
service can make.

The tag lets the ticket store tell, with no memory of the ticket, an id it issued
from one it never did: an id whose ticket was released after its TTL answers 410,
one issued by a ticket store replica that has since died answers ``lost``, and a
made-up or mistyped id answers 404. The tenant's mark (a keyed hash of its name, under
the tag) makes another tenant's id read as one never issued, with no record of who
owns what. An id tells nothing about any other ticket, nor which tenant it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct

from pydantic import BaseModel, Field

_RANDOM_BYTES = 16
_TAG_BYTES = 12
_TENANT_BYTES = 8
_ISSUED_AT = struct.Struct(">Q")  # milliseconds since the epoch
_ID_BYTES = _RANDOM_BYTES + _ISSUED_AT.size + _TENANT_BYTES + _TAG_BYTES
ID_LENGTH = (_ID_BYTES * 4 + 2) // 3  # 59 characters, base64url without padding
# The tenant of a service without tenants: one API key, or none.
DEFAULT_TENANT = "default"


_MIN_SECRET_BYTES = 16


class SigningArgs(BaseModel):
    secret_env: str = Field(
        "MULTISTAGE_TICKET_SECRET",
        description="Environment variable (where the app is built) holding the hex secret "
        "that signs ticket ids; unset, each build of the app signs with a fresh secret.",
    )


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def load_secret(args: SigningArgs) -> bytes:
    """The configured secret, else a fresh one.

    A fixed secret keeps ids meaningful across builds of the app (a changed config, a new
    cluster): an id from before then reads 'lost' rather than 'never issued'.
    """
    configured = os.environ.get(args.secret_env, "").strip()
    if not configured:
        return new_secret()
    try:
        secret = bytes.fromhex(configured)
    except ValueError:
        raise ValueError(f"{args.secret_env} must be hex") from None
    if len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(f"{args.secret_env} must hold at least {_MIN_SECRET_BYTES} bytes")
    return secret


class TicketIds:
    """Issues and checks ticket ids signed with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, now: float, tenant: str = DEFAULT_TENANT) -> str:
        payload = (
            secrets.token_bytes(_RANDOM_BYTES)
            + _ISSUED_AT.pack(round(now * 1000))
            + self._tenant_mark(tenant)
        )
        return base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode()

    def issued_at(self, ticket_id: str) -> float | None:
        """When the ticket was issued, in epoch seconds; None if this service never issued it."""
        payload = self._payload(ticket_id)
        if payload is None:
            return None
        (millis,) = _ISSUED_AT.unpack_from(payload, _RANDOM_BYTES)
        return millis / 1000

    def issued_to(self, ticket_id: str, tenant: str) -> bool:
        """Whether this service issued the ticket to ``tenant``."""
        payload = self._payload(ticket_id)
        mark = payload[-_TENANT_BYTES:] if payload is not None else b""
        return hmac.compare_digest(mark, self._tenant_mark(tenant))

    def _payload(self, ticket_id: str) -> bytes | None:
        """The id's signed payload; None if this service did not sign it."""
        if len(ticket_id) != ID_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(ticket_id + "=" * (-len(ticket_id) % 4))
        except (binascii.Error, ValueError):
            return None
        payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(raw) != _ID_BYTES or not hmac.compare_digest(tag, self._tag(payload)):
            return None
        return payload

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def _tenant_mark(self, tenant: str) -> bytes:
        keyed = hmac.new(self._secret, b"tenant:" + tenant.encode(), hashlib.sha256)
        return keyed.digest()[:_TENANT_BYTES]
