"""Retries (exponential backoff with full jitter, honouring ``Retry-After``) and the
per-deployment cooldown circuit breaker.

Retries wrap one deployment; fallback to the next deployment is the gateway's job. Only
:attr:`ProviderError.retryable` errors are retried (connect errors, timeouts, 408, 429,
5xx). A ``Retry-After`` longer than :attr:`RetryPolicy.max_retry_after` is not waited for:
the deployment gives up at once so the gateway can fall back instead of holding the
request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..providers.base import ProviderError

__all__ = ["Cooldowns", "RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    backoff: float = 0.5
    """Upper bound of the first wait; the window doubles per retry (full jitter)."""
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, retry: int, exc: ProviderError) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based) after ``exc``, or
        ``None`` to give up: not retryable, retries used up, or a ``Retry-After`` longer
        than :attr:`max_retry_after`."""
        if not exc.retryable or retry > self.max_retries:
            return None
        after = exc.retry_after
        if after is not None:
            return after if after <= self.max_retry_after else None
        # Full jitter over an exponentially growing window: [0, backoff * 2^(retry-1)].
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (retry - 1)))


async def call_with_retries(policy: RetryPolicy, fn: Callable[[], Awaitable[T]]) -> T:
    """``await fn()``, retried per ``policy``; the last error is re-raised unchanged.

    A plain loop rather than a retry library: this runs once per upstream call, and the
    common case (the first attempt succeeds) must cost no more than the ``await`` itself.
    """
    retry = 0
    while True:
        try:
            return await fn()
        except ProviderError as exc:
            retry += 1
            delay = policy.delay(retry, exc)
            if delay is None:
                raise
        await asyncio.sleep(delay)


@dataclass(slots=True)
class _State:
    failures: int = 0
    until: float = 0.0


@dataclass
class Cooldowns:
    """Consecutive failures per deployment; ``threshold`` of them cool it down.

    A cooled-down deployment is skipped until ``cooldown`` seconds have passed; then the
    next call is let through (half-open) and one more failure cools it down again, while
    a success resets it.
    """

    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)

    def remaining(self, key: str) -> float:
        state = self._states.get(key)
        return max(0.0, state.until - self.clock()) if state else 0.0

    def available(self, key: str) -> bool:
        return self.remaining(key) <= 0

    def failure(self, key: str, *, threshold: int, cooldown: float) -> bool:
        """Count a failure; ``True`` if it (re)started a cooldown."""
        state = self._states.setdefault(key, _State())
        state.failures += 1
        if cooldown > 0 and state.failures >= threshold:
            state.until = self.clock() + cooldown
            return True
        return False

    def success(self, key: str) -> None:
        self._states.pop(key, None)

    def cooled(self) -> dict[str, float]:
        """Deployments cooling down now, with the seconds left."""
        now = self.clock()
        return {k: s.until - now for k, s in self._states.items() if s.until > now}
