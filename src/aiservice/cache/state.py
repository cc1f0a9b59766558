"""The shared-state capability: builds the configured backend once per app.

``start(runtime)`` looks the backend up in :data:`~aiservice.cache.base.BACKENDS` (imported
lazily, so Redis or boto3 load only when configured), wraps it fail-open, registers a
non-required ``cache`` readiness check and closes it with the app. It sets two fields of
the runtime: ``state`` and ``limiter``; the LLM response cache on this backend is built with
the gateway (:mod:`aiservice.llm.cache`). The accessors below raise a clear error when the
capability did not start, for callers that cannot do without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from .base import BACKENDS, StateBackend
from .failopen import FailOpenBackend, StrictBackend

if TYPE_CHECKING:
    from ..llm.accounting import Accountant
    from ..runtime import Runtime
    from .ratelimit import RateLimiter

__all__ = [
    "build_backend",
    "charge_usage",
    "get_durable_state",
    "get_rate_limiter",
    "get_state",
    "start",
]

_T = TypeVar("_T")

# The Runtime fields ``start`` sets (see aiservice.app.start_hooks).
PROVIDES = ("state", "limiter")
START_AFTER: tuple[str, ...] = ()


def build_backend(runtime: Runtime) -> FailOpenBackend:
    """The configured backend, wrapped fail-open with ``cache.timeout_ms``."""
    from ..registry import PluginImportError, PluginNotFoundError
    from ..runtime import StartupError

    settings = runtime.settings
    try:
        factory = BACKENDS.get(settings.cache.backend)
    except (PluginNotFoundError, PluginImportError) as exc:
        raise StartupError(f"cache.backend: {exc}") from exc
    try:
        inner = factory(settings, runtime.secrets)
    except Exception as exc:  # a client that cannot even be built (bad URL, no region)
        raise StartupError(f"cache.backend {settings.cache.backend!r}: {exc}") from exc
    return FailOpenBackend(inner, settings.cache.timeout_ms / 1000)


async def start(runtime: Runtime) -> None:
    from .ratelimit import RateLimiter

    backend = build_backend(runtime)
    runtime.stack.push_async_callback(backend.aclose)
    await backend.warm()
    runtime.state = backend
    runtime.limiter = RateLimiter(backend, runtime.settings)
    # Not required: the service works uncached while the backend is down (fail open).
    runtime.health.add("cache", backend.ping, required=False)


def get_state(runtime: Runtime) -> StateBackend:
    """The app's shared-state backend (fail-open wrapped). Requires the capability started."""
    return _started(runtime.state, "state")


def get_durable_state(runtime: Runtime) -> StateBackend:
    """The same backend without fail-open, for records that must not be dropped silently.

    Errors raise :class:`~aiservice.cache.failopen.StateUnavailableError` (503). The timeout
    is ten times ``cache.timeout_ms`` (at least one second).
    """
    wrapper = _started(runtime.state, "state")
    timeout = max(1.0, 10 * runtime.settings.cache.timeout_ms / 1000)
    return StrictBackend(wrapper.inner, timeout)


def get_rate_limiter(runtime: Runtime) -> RateLimiter:
    return _started(runtime.limiter, "limiter")


def charge_usage(runtime: Runtime, accountant: Accountant) -> None:
    """Make token limits and budgets see every finished upstream call (if limits run)."""
    if runtime.limiter is not None:
        accountant.listeners.append(runtime.limiter.record)


def _started(value: _T | None, field: str) -> _T:
    if value is None:
        raise RuntimeError(
            f"shared state is not started: add 'aiservice.cache.state' to CAPABILITIES "
            f"(runtime.{field})"
        )
    return value
