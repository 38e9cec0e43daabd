"""Who a request is: the tenant its API key names.

One key in the environment (or a key file of one line) makes one tenant, ``default``, as
a service without tenants. A tenants file maps each tenant to the SHA-256 of its key
(never the key itself) and is read again when it changes, so a key is added, rotated or
revoked without a restart::

    {"tenants": {"acme": {"key_sha256": "9f86d0..."}, "globex": {"key_sha256": "60303a..."}}}

(``printf %s "$KEY" | sha256sum`` gives a key's hash.) A tenant's tickets are its own:
another tenant reading, waiting on, streaming, following or cancelling one gets the 404
of an id never issued (``multistage/tickets/ids.py`` marks each id with its tenant).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from multistage.tickets.ids import DEFAULT_TENANT

logger = logging.getLogger("ray.serve")
# How often a tenants file is checked for changes (a stat), at most.
_CHECK_EVERY_S = 1.0


class TenantKey(BaseModel):
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex.")
    max_unfinished: int | None = Field(
        None,
        gt=0,
        description="The tenant's cap on its stage-two tickets not yet ended, so that it cannot "
        "fill stage two for the others; none: only the service's own limit.",
    )


class TenantsFile(BaseModel):
    tenants: dict[str, TenantKey] = Field(min_length=1)


class Tenants:
    """Resolves the key a request offers to its tenant; None: no tenant has that key."""

    def __init__(self, by_digest: dict[bytes, str], limits: dict[str, int] | None = None) -> None:
        self._by_digest = by_digest
        self._limits = limits or {}

    @classmethod
    def single(cls, key: str) -> Tenants:
        return cls({_digest(key.encode()): DEFAULT_TENANT})

    def limit_of(self, tenant: str) -> int | None:
        """The tenant's cap on its unfinished stage-two tickets; None: none of its own."""
        return self._limits.get(tenant)

    def tenant_of(self, offered: bytes | None) -> str | None:
        # A lookup by the key's digest: its timing says nothing of the key (no one can
        # choose a digest's bytes), as a constant-time comparison would not either.
        return None if offered is None else self._by_digest.get(_digest(offered))


class TenantsFromFile(Tenants):
    """The tenants of a file, read again when its modification time changes; a change that
    does not parse keeps the tenants in force (and is logged)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._checked_at = clock()
        self._modified_ns = path.stat().st_mtime_ns
        super().__init__(*_read_tenants(path))

    def tenant_of(self, offered: bytes | None) -> str | None:
        if self._clock() - self._checked_at >= _CHECK_EVERY_S:
            self._reload_if_changed()
        return super().tenant_of(offered)

    def _reload_if_changed(self) -> None:
        self._checked_at = self._clock()
        try:
            modified_ns = self._path.stat().st_mtime_ns
            if modified_ns != self._modified_ns:
                self._by_digest, self._limits = _read_tenants(self._path)
                self._modified_ns = modified_ns
                logger.info("tenants file %s read again: %d keys", self._path, len(self._by_digest))
        except (OSError, ValueError) as error:
            logger.warning("tenants file %s kept as it was: %s", self._path, error)


def _read_tenants(path: Path) -> tuple[dict[bytes, str], dict[str, int]]:
    """Each key's digest with its tenant, and the tenants' caps."""
    try:
        parsed = TenantsFile.model_validate_json(path.read_bytes())
    except ValidationError as error:
        raise ValueError(f"{path} is not a tenants file: {error}") from None
    by_digest = {bytes.fromhex(t.key_sha256): name for name, t in parsed.tenants.items()}
    limits = {name: t.max_unfinished for name, t in parsed.tenants.items() if t.max_unfinished}
    return by_digest, limits


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()
