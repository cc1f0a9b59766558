"""The one retry loop for upstream calls: the gateway's provider calls, orchestrator steps
and webhook deliveries.

Exponential backoff with full jitter (or none, when a flow asks for fixed delays), and the
server's ``Retry-After`` (seconds or an HTTP date, or ``retry-after-ms``) winning over the
backoff: the server knows when it will recover. What is worth another attempt is the
failure's own judgement: an exception with a true ``retryable`` attribute (and optionally
``retry_after`` seconds) is retried, any other exception is raised at once.

No HTTP library is imported here, so a caller can retry without loading one.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple, TypeVar

__all__ = ["RetryLog", "RetryPolicy", "call_with_retries", "parse_retry_after"]

T = TypeVar("T")

RetryLog = Callable[[int, BaseException, float], None]
"""Told ``(attempt, error, delay)`` before each wait."""


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date);
    ``None`` when absent or unreadable. A date in the past is ``0``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RetryPolicy(NamedTuple):
    """How often and how long to wait. ``max_retries`` counts retries, not attempts."""

    max_retries: int = 2
    backoff: float = 0.5
    """The first wait (with jitter: the upper bound of the first window)."""
    multiplier: float = 2.0
    max_backoff: float = 8.0
    jitter: bool = True
    """Full jitter: a uniform draw in ``[0, window]``, so clients that failed together do
    not come back together."""
    max_retry_after: float | None = 30.0
    """A ``Retry-After`` longer than this is not waited for: give up at once (the gateway
    falls back instead of holding the request). ``None``: any wait is honoured."""

    def backoff_delay(self, retry: int, rng: random.Random | None = None) -> float:
        """The backoff before retry number ``retry`` (1-based)."""
        window = min(self.max_backoff, self.backoff * self.multiplier ** (retry - 1))
        return (rng or random).uniform(0, window) if self.jitter else window

    def delay(self, retry: int, exc: BaseException) -> float | None:
        """Seconds to wait before retry number ``retry`` after ``exc``, or ``None`` to give
        up: not retryable, retries used up, or a ``Retry-After`` over the limit."""
        if not getattr(exc, "retryable", False) or retry > self.max_retries:
            return None
        after: float | None = getattr(exc, "retry_after", None)
        if after is not None:
            limit = self.max_retry_after
            return after if limit is None or after <= limit else None
        return self.backoff_delay(retry)


async def call_with_retries(
    policy: RetryPolicy,
    fn: Callable[[], Awaitable[T]],
    *,
    give_up: Callable[[], bool] | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] | None = None,
    on_retry: RetryLog | None = None,
) -> T:
    """``await fn()``, retried per ``policy``; the last error is re-raised unchanged.

    ``give_up()`` is asked before each retry (the gateway's circuit breaker opened
    meanwhile); ``deadline`` (on ``clock``, by default the running loop's) ends the
    retries when the wait would reach it, so a fallback or the caller still has time.

    A plain loop rather than a retry library: this runs once per upstream call, and the
    common case (the first attempt succeeds) must cost no more than the ``await`` itself.
    """
    retry = 0
    while True:
        try:
            return await fn()
        except Exception as exc:
            retry += 1
            delay = policy.delay(retry, exc)
            if delay is None or (give_up is not None and give_up()):
                raise
            if deadline is not None:
                now = clock() if clock is not None else asyncio.get_running_loop().time()
                if now + delay >= deadline:
                    raise
            if on_retry is not None:
                on_retry(retry, exc, delay)
        await asyncio.sleep(delay)
