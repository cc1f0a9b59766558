"""Whether a request may read or write the response cache, and for how long.

* ``cache.mode``: ``off`` (never), ``on`` (always), ``deterministic`` (only requests with
  ``temperature: 0`` or a ``seed``, whose answers are meant to be repeatable).
* ``Cache-Control: no-cache`` skips the read (a fresh answer, still stored);
  ``no-store`` skips the write; ``x-aiservice-cache-ttl: SECONDS`` sets the entry TTL.

A request that may neither read nor write bypasses the cache entirely, including request
coalescing: sharing one sampled answer between non-deterministic requests would change
their meaning.

The statuses a request ends with (:data:`CacheStatus`) are defined here with the header that
reports them and the counters that count them (:data:`CACHE_REQUESTS`, :data:`COALESCED`):
the response cache, the cached calls and the routes that bypass them all count in the same
series.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from ...errors import InvalidRequestError
from ...observability.metrics import counter, labelled

__all__ = [
    "CACHE_REQUESTS",
    "CACHE_STATUS_HEADER",
    "CACHE_TTL_HEADER",
    "COALESCED",
    "CachePolicy",
    "CacheStatus",
    "cache_requests",
    "decide",
]

CacheStatus = Literal["hit", "miss", "bypass", "coalesced"]

CACHE_STATUS_HEADER = "x-aiservice-cache"
CACHE_TTL_HEADER = "x-aiservice-cache-ttl"
MAX_TTL = 365 * 86_400

CACHE_REQUESTS = counter(
    "aiservice_cache_requests_total",
    "LLM response cache lookups by result (coalesced requests also count here).",
    ("result",),
)
cache_requests = labelled(CACHE_REQUESTS)
"""``CACHE_REQUESTS.labels`` with the children cached (counted on every LLM request)."""
COALESCED = counter(
    "aiservice_coalesced_requests_total",
    "Requests answered by another request's upstream call (local flight or remote lease).",
    ("scope",),
)


class CachePolicy(NamedTuple):
    read: bool
    write: bool
    ttl: float | None = None  # None: cache.ttl

    @property
    def active(self) -> bool:
        return self.read or self.write


BYPASS = CachePolicy(read=False, write=False)


def _deterministic(request: Mapping[str, Any]) -> bool:
    return request.get("temperature") == 0 or request.get("seed") is not None


_MODES = {
    "off": lambda request: False,
    "on": lambda request: True,
    "deterministic": _deterministic,
}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers.get goes through Mapping.get: a KeyError raised and caught for
    # every absent header, on every LLM request. Its raw list is scanned directly.
    raw = getattr(headers, "raw", None)
    if raw is None:
        return headers.get(name)
    wanted = name.encode("latin-1")
    for key, value in raw:
        if key == wanted:
            return str(value.decode("latin-1"))
    return None


def _directives(headers: Mapping[str, str]) -> set[str]:
    value = _header(headers, "cache-control") or ""
    return {part.strip().lower().split("=", 1)[0] for part in value.split(",") if part.strip()}


def _ttl(headers: Mapping[str, str]) -> float | None:
    raw = _header(headers, CACHE_TTL_HEADER)
    if raw is None:
        return None
    try:
        ttl = int(raw.strip())
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= MAX_TTL:
        raise InvalidRequestError(
            f"{CACHE_TTL_HEADER} must be an integer number of seconds from 1 to {MAX_TTL}",
            code="invalid_cache_ttl",
            param=CACHE_TTL_HEADER,
        )
    return float(ttl)


def decide(mode: str, request: Mapping[str, Any], headers: Mapping[str, str]) -> CachePolicy:
    """The policy for one request. ``headers`` must be case-insensitive (Starlette's are).

    Raises :class:`~aiservice.errors.InvalidRequestError` for a malformed TTL header.
    """
    ttl = _ttl(headers)
    if not _MODES[mode](request):
        return BYPASS
    directives = _directives(headers)
    return CachePolicy(
        read="no-cache" not in directives, write="no-store" not in directives, ttl=ttl
    )
