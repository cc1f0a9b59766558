"""The LLM response cache: entries, keys, policy, coalescing, and the cached gateway calls.

It belongs to the gateway: it caches the gateway's answers. What it stores them in (and
the rate limiter's counters, the orchestrator's records) is the shared-state backend of
:mod:`aiservice.cache`, one layer below.

* :mod:`.calls` - ``cached_chat`` / ``cached_stream`` / ``cached_embed``, what the routes call;
* :mod:`.responses` - :class:`~.responses.ResponseCache`: lookups, leases, flights, stores;
* :mod:`.entries` - the stored form of an entry and its reads and writes on the backend;
* :mod:`.policy` (with the cache-status counters), :mod:`.keys`, :mod:`.chunks`,
  :mod:`.flight` - the pure parts and the in-process singleflight.

The response cache is built with the gateway (``aiservice.api.openai_compat.start``) on
the shared-state backend, and read with :func:`get_response_cache`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...runtime import Runtime
    from .responses import ResponseCache

__all__ = ["get_response_cache"]


def get_response_cache(runtime: Runtime) -> ResponseCache:
    """The app's response cache. Requires the gateway capability started (with state)."""
    if runtime.response_cache is None:
        raise RuntimeError(
            "the response cache is not started: add 'aiservice.cache.state' and "
            "'aiservice.api.openai_compat' to CAPABILITIES (runtime.response_cache)"
        )
    return runtime.response_cache
