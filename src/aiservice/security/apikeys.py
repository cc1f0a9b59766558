"""API key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Keys come from ``auth.api_keys`` (anonymous names ``key-0``, ``key-1``...), ``auth.keys``
(named, optionally with per-key limits) and ``auth.admin_keys``; any of them may be a
``secret://`` reference, re-resolved after the secrets TTL so rotation needs no redeploy.

Comparison is constant-time over fixed-length digests and always walks every key, so
neither the position of a match nor the length of a key leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import RateLimitValues
from ..errors import AuthenticationError, PermissionDeniedError
from ..observability.logging import warn_once

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["ANONYMOUS", "KeyStore", "Principal", "extract_key"]

log = logging.getLogger("aiservice.security")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``name`` is safe to log and to use as a rate-limit identity."""

    name: str
    admin: bool = False
    limits: RateLimitValues | None = None
    authenticated: bool = True


ANONYMOUS = Principal("anonymous", admin=False, authenticated=False)


@dataclass(frozen=True, slots=True)
class _KeySpec:
    name: str
    value: str  # literal or secret reference
    admin: bool
    limits: RateLimitValues | None


def extract_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip() or None
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


_MAX_DIGESTS = 1024


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class KeyStore:
    def __init__(self, settings: Settings, secrets: SecretResolver) -> None:
        auth = settings.auth
        specs = [_KeySpec(f"key-{i}", v, False, None) for i, v in enumerate(auth.api_keys)]
        specs += [_KeySpec(f"admin-{i}", v, True, None) for i, v in enumerate(auth.admin_keys)]
        specs += [_KeySpec(n, k.key, k.admin, k.limits) for n, k in auth.keys.items()]
        self._specs = specs
        self._secrets = secrets
        # Digest of each resolved key value: hashed once, not on every request. Keyed by
        # the value, so a rotated secret gets its own entry; bounded for endless rotation.
        self._digests: dict[str, bytes] = {}

    def _key_digest(self, value: str) -> bytes:
        digest = self._digests.get(value)
        if digest is None:
            if len(self._digests) >= _MAX_DIGESTS:
                self._digests.clear()
            digest = self._digests[value] = _digest(value)
        return digest

    @property
    def open(self) -> bool:
        """No keys configured: every caller is accepted as :data:`ANONYMOUS`."""
        return not self._specs

    @property
    def has_admin(self) -> bool:
        return any(s.admin for s in self._specs)

    def references(self) -> list[str]:
        return [s.value for s in self._specs]

    async def authenticate(self, presented: str | None) -> Principal:
        if self.open:
            warn_once(log, "auth-open", "no API keys configured: the service accepts any caller")
            return ANONYMOUS
        if presented is None:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                code="missing_api_key",
            )
        wanted = _digest(presented)
        found: _KeySpec | None = None
        for spec in self._specs:
            value = await self._secrets.resolve(spec.value)
            # No early exit: every key is compared whatever matched before.
            if hmac.compare_digest(self._key_digest(value), wanted) and found is None:
                found = spec
        if found is None:
            raise AuthenticationError("invalid API key", code="invalid_api_key")
        return Principal(found.name, admin=found.admin, limits=found.limits)

    async def authenticate_admin(self, presented: str | None) -> Principal:
        if not self.has_admin:
            raise PermissionDeniedError(
                "admin endpoints are disabled: configure auth.admin_keys", code="admin_disabled"
            )
        principal = await self.authenticate(presented)
        if not principal.admin:
            raise PermissionDeniedError("this key is not an admin key", code="admin_required")
        return principal
