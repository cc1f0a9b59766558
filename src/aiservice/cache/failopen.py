"""Fail-open wrapper: a down or slow backend is bypassed, never a failed request.

Every call is bounded by ``cache.timeout_ms``. On a timeout or error the wrapper returns
the "nothing cached" answer (``get`` → ``None``, ``set``/``delete`` → no-op, ``add`` →
``True`` so the caller proceeds as the owner, ``incr`` → ``amount``), counts the error,
logs a warning at most once per interval, and stops calling the backend for a short
cool-down so an outage costs requests nothing instead of a timeout each.

``consume`` (rate limits) is the exception: it raises :class:`StateUnavailableError`, because
whether limits fail open or closed is a policy (``limits.on_backend_error``) of the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..errors import ServiceUnavailableError
from ..observability.metrics import counter, histogram
from .base import Consume, ConsumeResult, StateBackend

__all__ = ["FailOpenBackend", "StateUnavailableError", "StrictBackend"]

log = logging.getLogger("aiservice.cache")

T = TypeVar("T")

STATE_ERRORS = counter(
    "aiservice_state_backend_errors_total",
    "Shared-state operations that failed or timed out and were bypassed (fail open).",
    ("backend", "operation", "reason"),
)
OPERATION_SECONDS = histogram(
    "aiservice_cache_operation_duration_seconds",
    "Latency of shared-state backend operations.",
    ("backend", "operation"),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class StateUnavailableError(ServiceUnavailableError):
    """The backend failed, timed out or is cooling down after a failure (503 if it escapes)."""


class FailOpenBackend:
    """Wraps any :class:`~aiservice.cache.base.StateBackend` (itself one)."""

    def __init__(
        self,
        inner: StateBackend,
        timeout: float,
        *,
        warn_interval: float = 60.0,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.timeout = timeout
        self.warn_interval = warn_interval
        self.cooldown = cooldown
        self._clock = clock
        self._skip_until = 0.0
        self._last_warning: float | None = None

    @property
    def available(self) -> bool:
        """``False`` while cooling down after a failure."""
        return self._clock() >= self._skip_until

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        if not self.available:
            STATE_ERRORS.labels(self.name, operation, "cooldown").inc()
            raise StateUnavailableError(f"{self.name} backend cooling down after a failure")
        start = time.perf_counter()
        try:
            # asyncio.timeout, not wait_for: no extra task per call on the hot path.
            async with asyncio.timeout(self.timeout):
                result = await make()
        except Exception as exc:  # any backend failure is bypassed, whatever the client lib
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            self._failed(operation, reason, exc)
            raise StateUnavailableError(f"{self.name} backend {reason}: {exc!r}") from exc
        OPERATION_SECONDS.labels(self.name, operation).observe(time.perf_counter() - start)
        return result

    def _failed(self, operation: str, reason: str, exc: Exception) -> None:
        STATE_ERRORS.labels(self.name, operation, reason).inc()
        now = self._clock()
        self._skip_until = now + self.cooldown
        if self._last_warning is None or now - self._last_warning >= self.warn_interval:
            self._last_warning = now
            log.warning(
                "shared state backend %s unavailable (%s on %s: %s); bypassing it",
                self.name,
                reason,
                operation,
                type(exc).__name__,
            )

    async def get(self, key: str) -> bytes | None:
        try:
            return await self._call("get", lambda: self.inner.get(key))
        except StateUnavailableError:
            return None

    async def checked_get(self, key: str) -> bytes | None:
        """Like :meth:`get` but raises :class:`StateUnavailableError` instead of a miss."""
        return await self._call("get", lambda: self.inner.get(key))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        try:
            await self._call("set", lambda: self.inner.set(key, value, ttl))
        except StateUnavailableError:
            return None

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        try:
            return await self._call("add", lambda: self.inner.add(key, value, ttl))
        except StateUnavailableError:
            return True

    async def delete(self, key: str) -> None:
        try:
            await self._call("delete", lambda: self.inner.delete(key))
        except StateUnavailableError:
            return None

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        try:
            return await self._call("incr", lambda: self.inner.incr(key, amount, ttl))
        except StateUnavailableError:
            return amount

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        """Raises :class:`StateUnavailableError`: the caller applies its own policy."""
        return await self._call("consume", lambda: self.inner.consume(items))

    async def ping(self) -> None:
        await asyncio.wait_for(self.inner.ping(), max(self.timeout, 1.0))

    async def aclose(self) -> None:
        await self.inner.aclose()


class StrictBackend:
    """The same backend for records that must not be lost (orchestrator executions,
    idempotency keys): a failure raises :class:`StateUnavailableError` — a 503 for the client,
    a redelivery for a queue worker — instead of being bypassed like a cache miss.

    Bounded by its own timeout, longer than the cache's: a durable write may wait a little.
    """

    def __init__(self, inner: StateBackend, timeout: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.timeout = timeout

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                result = await make()
        except Exception as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            STATE_ERRORS.labels(self.name, operation, reason).inc()
            raise StateUnavailableError(
                f"shared state backend {self.name} unavailable ({reason} on {operation})",
                code="state_unavailable",
            ) from exc
        OPERATION_SECONDS.labels(self.name, operation).observe(time.perf_counter() - start)
        return result

    async def get(self, key: str) -> bytes | None:
        return await self._call("get", lambda: self.inner.get(key))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._call("set", lambda: self.inner.set(key, value, ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._call("add", lambda: self.inner.add(key, value, ttl))

    async def delete(self, key: str) -> None:
        await self._call("delete", lambda: self.inner.delete(key))

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        return await self._call("incr", lambda: self.inner.incr(key, amount, ttl))

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        return await self._call("consume", lambda: self.inner.consume(items))

    async def ping(self) -> None:
        await self._call("ping", self.inner.ping)

    async def aclose(self) -> None:
        """The wrapped backend is owned (and closed) by the fail-open wrapper's capability."""
