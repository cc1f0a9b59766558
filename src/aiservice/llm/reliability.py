"""Retries (exponential backoff with full jitter, honouring ``Retry-After``) and the
per-deployment cooldown circuit breaker.

Retries wrap one deployment; fallback to the next deployment is the gateway's job. Only
:attr:`ProviderError.retryable` errors are retried (connect errors, timeouts, 408, 429,
5xx). A ``Retry-After`` longer than :attr:`RetryPolicy.max_retry_after` is not waited for:
the deployment gives up at once so the gateway can fall back instead of holding the
request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

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


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


def _retry_after(state: RetryCallState) -> float | None:
    exc = state.outcome.exception() if state.outcome is not None else None
    return exc.retry_after if isinstance(exc, ProviderError) else None


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    jitter = wait_random_exponential(multiplier=policy.backoff, max=policy.max_backoff)

    def wait(state: RetryCallState) -> float:
        after = _retry_after(state)
        return after if after is not None else float(jitter(state))

    return wait


def _stop(policy: RetryPolicy) -> Callable[[RetryCallState], bool]:
    attempts = stop_after_attempt(policy.max_retries + 1)

    def stop(state: RetryCallState) -> bool:
        after = _retry_after(state)
        return attempts(state) or (after is not None and after > policy.max_retry_after)

    return stop


async def call_with_retries(policy: RetryPolicy, fn: Callable[[], Awaitable[T]]) -> T:
    """``await fn()``, retried per ``policy``; the last error is re-raised unchanged."""
    retrying = AsyncRetrying(
        stop=_stop(policy),
        wait=_wait(policy),
        retry=retry_if_exception(_is_retryable),
        reraise=True,
    )
    result: T = await retrying(fn)
    return result


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
