"""Provider errors → the client-facing errors of :mod:`aiservice.errors`.

Rules are tried in order (first match wins). Upstream credential problems become 502 with
a message that names the provider and config key, never the key or the upstream's text
(which often echoes it); timeouts become 504; upstream 429 stays 429 with its
``Retry-After``; other upstream client errors keep their status so the caller can fix the
request; the rest is 502 (503 when the upstream said so).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import (
    AIServiceError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    error_for_status,
)
from ..providers.base import ProviderError

__all__ = ["client_error"]


def _auth(exc: ProviderError, name: str) -> AIServiceError:
    return UpstreamError(
        f"provider {name!r} rejected the configured credentials (upstream HTTP {exc.status}); "
        f"check providers.{name}.api_key",
        code="upstream_auth_failed",
    )


def _timeout(exc: ProviderError, name: str) -> AIServiceError:
    return UpstreamTimeoutError(f"provider {name!r} did not answer in time")


def _rate_limited(exc: ProviderError, name: str) -> AIServiceError:
    headers = {"retry-after": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
    return RateLimitError(
        f"provider {name!r} is rate limiting: {exc.message}",
        code="upstream_rate_limited",
        headers=headers,
    )


def _client(exc: ProviderError, name: str) -> AIServiceError:
    status = exc.status or 400
    return error_for_status(status)(exc.message, code="upstream_rejected_request")


def _connect(exc: ProviderError, name: str) -> AIServiceError:
    return UpstreamError(
        f"provider {name!r} is unreachable: {exc.message}", code="upstream_unreachable"
    )


def _unavailable(exc: ProviderError, name: str) -> AIServiceError:
    return ServiceUnavailableError(exc.message, code="upstream_unavailable")


def _other(exc: ProviderError, name: str) -> AIServiceError:
    return UpstreamError(exc.message, code="upstream_error")


Rule = tuple[Callable[[ProviderError], bool], Callable[[ProviderError, str], AIServiceError]]

RULES: list[Rule] = [
    (lambda e: e.kind == "auth", _auth),
    (lambda e: e.kind == "timeout" or e.status in (408, 504), _timeout),
    (lambda e: e.status == 429, _rate_limited),
    (lambda e: e.status is not None and 400 <= e.status < 500, _client),
    (lambda e: e.kind == "connect", _connect),
    (lambda e: e.status == 503, _unavailable),
    (lambda e: True, _other),
]


def client_error(exc: ProviderError, provider_name: str) -> AIServiceError:
    """The error the client sees for a provider failure that no retry or fallback fixed."""
    for matches, build in RULES:
        if matches(exc):
            return build(exc, provider_name)
    raise AssertionError("the last rule matches everything")
