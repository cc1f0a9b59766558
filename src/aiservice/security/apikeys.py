"""API key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Keys come from ``auth.api_keys`` (anonymous names ``key-0``, ``key-1``...), ``auth.keys``
(named, optionally with per-key limits) and ``auth.admin_keys``; any of them may be a
``secret://`` reference, re-resolved after the secrets TTL so rotation needs no redeploy.

Comparison is constant-time over fixed-length digests and always walks every key, so
neither the position of a match nor the length of a key leaks through timing.

A configured key that is obviously not a key (a placeholder such as ``REPLACE_ME`` or
``<your-api-key>``, or shorter than ``auth.min_key_length``) stops the service at startup:
:meth:`KeyStore.verify` raises :class:`~aiservice.errors.ConfigError` naming the key's
config path, never its value.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from typing import TYPE_CHECKING, NamedTuple

from ..config import SECRET_PREFIX, RateLimitValues
from ..errors import AuthenticationError, ConfigError, PermissionDeniedError, SecretError
from ..observability.logging import warn_once
from ..observability.redact import register_secret

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["ANONYMOUS", "KeyStore", "Principal", "extract_key", "key_problem"]

log = logging.getLogger("aiservice.security")


class Principal(NamedTuple):
    """Who is calling. ``name`` is safe to log and to use as a rate-limit identity."""

    name: str
    admin: bool = False
    limits: RateLimitValues | None = None
    authenticated: bool = True


ANONYMOUS = Principal("anonymous", admin=False, authenticated=False)


class _KeySpec(NamedTuple):
    name: str
    value: str  # literal or secret reference
    admin: bool
    limits: RateLimitValues | None
    path: str = ""  # where it is configured, for error messages (never the value)


# What people leave in templates and examples, searched case-insensitively in the whole
# key; a random key of 16+ characters matches none of these except by rare chance.
# Compiled when a key is first checked: a service without keys (a cold start's common case)
# does not compile it.
_PLACEHOLDER_PATTERN = r"""
    ^<.*>$ | ^\{\{.*\}\}$ | ^\$\{.*\}$ | ^%.*%$          # <your key>, {{key}}, ${KEY}, %KEY%
    | replace[-_ ]?(me|this|with) | change[-_ ]?(me|this|it)
    | your[-_ ]?(api[-_ ]?)?(key|secret|token)
    | (api[-_ ]?)?key[-_ ]?(goes[-_ ]?)?here | insert[-_ ]?.*here
    | placeholder | (^|[-_ .])(dummy|fixme|todo|redacted|none|null)([-_ .]|$)
    | x{6,} | \*{3,} | \.\.\. | …
    | ^(?P<c>.)(?P=c)*$                                    # one character repeated
    | ^(sk-|key-|api-?key-?)?(example|sample|secret|test|password|changeit)s?$
    """


@functools.cache
def _placeholders() -> re.Pattern[str]:
    return re.compile(_PLACEHOLDER_PATTERN, re.IGNORECASE | re.VERBOSE)


def key_problem(value: str, min_length: int) -> str | None:
    """Why ``value`` cannot be a real API key, or ``None``. Never quotes the value."""
    if _placeholders().search(value.strip()):
        return "looks like a placeholder, not a key"
    if len(value) < min_length:
        return (
            f"is too short ({len(value)} characters; auth.min_key_length is {min_length}):"
            " use a long random key, e.g. `openssl rand -hex 32`"
        )
    return None


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
        specs = [
            _KeySpec(f"key-{i}", v, False, None, f"auth.api_keys[{i}]")
            for i, v in enumerate(auth.api_keys)
        ]
        specs += [
            _KeySpec(f"admin-{i}", v, True, None, f"auth.admin_keys[{i}]")
            for i, v in enumerate(auth.admin_keys)
        ]
        specs += [
            _KeySpec(n, k.key, k.admin, k.limits, f"auth.keys.{n}.key")
            for n, k in auth.keys.items()
        ]
        self._specs = specs
        for spec in specs:
            # Literal keys are as secret as referenced ones (those register when resolved).
            if not spec.value.startswith(SECRET_PREFIX):
                register_secret(spec.value)
        self._min_length = auth.min_key_length
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

    async def verify(self) -> None:
        """Refuse placeholder and short keys, checked on the resolved values.

        Raises :class:`ConfigError` naming every bad key's config path. A reference that
        does not resolve is skipped: the secret check reports it with its own message.
        """
        problems = []
        for spec in self._specs:
            try:
                value = await self._secrets.resolve(spec.value)
            except SecretError:
                continue
            problem = key_problem(value, self._min_length)
            if problem:
                via = f" (from {spec.value})" if spec.value != value else ""
                problems.append(f"{spec.path}{via} {problem}")
        if problems:
            raise ConfigError("; ".join(problems), key="auth")

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
            value = spec.value
            if value.startswith(SECRET_PREFIX):  # a literal is its own value: no await
                value = await self._secrets.resolve(value)
            # No early exit: every key is compared whatever matched before.
            if hmac.compare_digest(self._key_digest(value), wanted) and found is None:
                found = spec
        if found is None:
            raise AuthenticationError("invalid API key", code="invalid_api_key")
        return Principal(found.name, admin=found.admin, limits=found.limits)

    def principal(self, name: str) -> Principal | None:
        """The configured key called ``name``, for work done later on its behalf (indexing
        a file it attached); ``None`` once that key is no longer configured."""
        if self.open:
            return ANONYMOUS if name == ANONYMOUS.name else None
        for spec in self._specs:
            if spec.name == name:
                return Principal(spec.name, admin=spec.admin, limits=spec.limits)
        return None

    async def authenticate_admin(self, presented: str | None) -> Principal:
        if not self.has_admin:
            raise PermissionDeniedError(
                "admin endpoints are disabled: configure auth.admin_keys", code="admin_disabled"
            )
        principal = await self.authenticate(presented)
        if not principal.admin:
            raise PermissionDeniedError("this key is not an admin key", code="admin_required")
        return principal
