"""Fail-open wrapper: a down or slow backend is bypassed, never a failed request.

Every call is bounded by ``cache.timeout_ms``. On a timeout or error the wrapper returns
the "nothing cached" answer (``get`` → ``None``, ``set``/``delete`` → no-op, ``add`` and
``compare_and_set`` → ``True`` so the caller proceeds as the owner, ``incr`` → ``amount``),
counts the error, logs a warning at most once per interval, and stops calling the backend
for a short cool-down so an outage costs requests nothing instead of a timeout each. When the
cool-down ends, one call probes the backend while the others keep bypassing it: a backend
that is still down costs one request the timeout per cool-down, not every concurrent one.

``consume`` (rate limits) is the exception: it raises :class:`StateUnavailableError`, because
whether limits fail open or closed is a policy (``limits.on_backend_error``) of the caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import AbstractEventLoop
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ..errors import ServiceUnavailableError
from ..observability.metrics import counter, histogram
from . import batch
from .base import Consume, ConsumeResult, StateBackend
from .batch import Lease, Lookup

__all__ = ["FailOpenBackend", "StateUnavailableError", "StrictBackend"]

log = logging.getLogger("aiservice.cache")

# A deadline timer running later than this fraction of the timeout means a busy event loop
# (a healthy loop runs timers within a millisecond or so), not a slow backend.
LATE_FRACTION = 0.25
MAX_WINDOWS = 4  # so a late loop stretches a call to at most 4 x timeout (plus the lag)

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
        self._failing = False
        self._probing = False
        self._skip_until = 0.0
        self._last_warning: float | None = None

    @property
    def available(self) -> bool:
        """``False`` while cooling down after a failure, or while another call probes."""
        return not self._failing or (not self._probing and self._clock() >= self._skip_until)

    async def _call(self, operation: str, make: Callable[[], Awaitable[T]]) -> T:
        if not self.available:
            STATE_ERRORS.labels(self.name, operation, "cooldown").inc()
            raise StateUnavailableError(f"{self.name} backend cooling down after a failure")
        probe = self._failing  # the one call that tests a backend after its cool-down
        self._probing = probe
        start = time.perf_counter()
        try:
            result = await self._bounded(make)
        except Exception as exc:  # any backend failure is bypassed, whatever the client lib
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            self._failed(operation, reason, exc)
            raise StateUnavailableError(f"{self.name} backend {reason}: {exc!r}") from exc
        finally:
            if probe:
                self._probing = False
        self._failing = False
        OPERATION_SECONDS.labels(self.name, operation).observe(time.perf_counter() - start)
        return result

    async def _bounded(self, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` within ``timeout`` of the event loop's attention.

        A deadline timer that fires late means the loop was busy (a CPU-heavy request, a
        burst of new connections, a cold start), and the backend's reply may be sitting
        unread in a socket: cancelling then would blame a healthy backend and switch the
        cache and rate limits off for the cool-down, exactly when the service is under
        load. So a late deadline grants another ``timeout``, up to :data:`MAX_WINDOWS` in
        all; with a punctual loop a slow backend fails after ``timeout`` as before.
        """
        loop = asyncio.get_running_loop()
        # asyncio.timeout, not wait_for: no extra task per call on the hot path.
        async with asyncio.timeout(None) as scope:
            window = _Window(loop, scope, self.timeout)
            try:
                return await make()
            finally:
                window.cancel()

    def _failed(self, operation: str, reason: str, exc: Exception) -> None:
        STATE_ERRORS.labels(self.name, operation, reason).inc()
        now = self._clock()
        self._failing = True
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

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        """``True`` when the backend is unavailable, like :meth:`add`: nothing can be
        coordinated then, and the caller proceeds as the holder."""
        try:
            return await self._call(
                "compare_and_set", lambda: self.inner.compare_and_set(key, expected, value, ttl)
            )
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

    async def lookup(self, key: str, *, lease: Lease | None, admit: Sequence[Consume]) -> Lookup:
        """:func:`aiservice.cache.batch.lookup` on the wrapped backend. Raises
        :class:`StateUnavailableError`: a miss to the cache, a policy to the rate limiter."""
        return await self._call(
            "lookup", lambda: batch.lookup(self.inner, key, lease=lease, admit=admit)
        )

    async def store(
        self,
        key: str,
        value: bytes | None,
        ttl: float | None,
        *,
        release: str | None,
        charge: Sequence[Consume],
    ) -> None:
        """:func:`aiservice.cache.batch.store` on the wrapped backend; failures are dropped
        (an entry not written, a lease left to expire, usage not charged)."""
        try:
            await self._call(
                "store",
                lambda: batch.store(self.inner, key, value, ttl, release=release, charge=charge),
            )
        except StateUnavailableError:
            return None

    async def ping(self) -> None:
        await asyncio.wait_for(self.inner.ping(), max(self.timeout, 1.0))

    async def warm(self) -> None:
        """Open the backend's connections before the first request (app startup).

        A backend may define ``warm()`` (Redis connects and loads its scripts): otherwise
        the first requests pay connection setup inside ``cache.timeout_ms``, time out and
        start a cool-down, so a fresh instance would serve its first second uncached and
        unlimited. Bounded, and never fails startup: a backend that is down is only
        marked failing, as if a request had found it so.
        """
        warm = getattr(self.inner, "warm", None)
        if warm is None:
            return
        try:
            await asyncio.wait_for(warm(), max(10 * self.timeout, 1.0))
        except Exception as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            self._failed("warm", reason, exc)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Window:
    """The deadline of one call: expires the scope when due, unless the loop ran late."""

    __slots__ = ("_handle", "_loop", "_scope", "_timeout", "_windows")

    def __init__(self, loop: AbstractEventLoop, scope: asyncio.Timeout, timeout: float) -> None:
        self._loop, self._scope, self._timeout = loop, scope, timeout
        self._windows = 1
        deadline = loop.time() + timeout
        self._handle = loop.call_at(deadline, self._due, deadline)

    def _due(self, deadline: float) -> None:
        now = self._loop.time()
        if now - deadline > self._timeout * LATE_FRACTION and self._windows < MAX_WINDOWS:
            self._windows += 1
            self._handle = self._loop.call_at(now + self._timeout, self._due, now + self._timeout)
        else:
            self._scope.reschedule(now)  # expires: the awaiting call gets TimeoutError

    def cancel(self) -> None:
        self._handle.cancel()


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

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        return await self._call(
            "compare_and_set", lambda: self.inner.compare_and_set(key, expected, value, ttl)
        )

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
