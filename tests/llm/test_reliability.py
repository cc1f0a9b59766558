"""Retry policy (full jitter, Retry-After) and the cooldown circuit breaker."""

from __future__ import annotations

import time

import pytest

from aiservice.llm.reliability import Cooldowns, RetryPolicy, call_with_retries
from aiservice.providers.base import ProviderError


class Flaky:
    """Fails with the given errors in turn, then returns ``"ok"``; records call times."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def status(code: int, retry_after: float | None = None) -> ProviderError:
    return ProviderError(f"HTTP {code}", status=code, retry_after=retry_after)


async def test_retryable_errors_are_retried_until_success() -> None:
    flaky = Flaky(status(500), ProviderError("t", kind="timeout"))
    assert await call_with_retries(RetryPolicy(max_retries=2, backoff=0.001), flaky) == "ok"
    assert len(flaky.times) == 3


async def test_gives_up_after_max_retries_with_the_last_error() -> None:
    flaky = Flaky(status(500), status(502), status(503))
    with pytest.raises(ProviderError) as info:
        await call_with_retries(RetryPolicy(max_retries=1, backoff=0.001), flaky)
    assert info.value.status == 502 and len(flaky.times) == 2


@pytest.mark.parametrize("code", [400, 401, 404, 422])
async def test_client_errors_are_not_retried(code: int) -> None:
    flaky = Flaky(status(code))
    with pytest.raises(ProviderError):
        await call_with_retries(RetryPolicy(max_retries=3, backoff=0.001), flaky)
    assert len(flaky.times) == 1


async def test_retry_after_sets_the_wait() -> None:
    flaky = Flaky(status(429, retry_after=0.25))
    await call_with_retries(RetryPolicy(max_retries=1, backoff=0.0), flaky)
    assert flaky.times[1] - flaky.times[0] >= 0.25


async def test_retry_after_beyond_the_limit_is_not_waited_for() -> None:
    flaky = Flaky(status(429, retry_after=100))
    with pytest.raises(ProviderError):
        await call_with_retries(RetryPolicy(max_retries=3, max_retry_after=30), flaky)
    assert len(flaky.times) == 1


async def test_backoff_is_full_jitter_within_the_doubling_window() -> None:
    flaky = Flaky(status(500), status(500), status(500))
    await call_with_retries(RetryPolicy(max_retries=3, backoff=0.05), flaky)
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    # windows are [0, 0.05], [0, 0.1], [0, 0.2] (plus scheduling slack)
    assert all(gap <= limit + 0.05 for gap, limit in zip(gaps, (0.05, 0.1, 0.2), strict=True))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_trips_at_the_threshold_and_expires() -> None:
    clock = Clock()
    cooldowns = Cooldowns(clock)
    assert not cooldowns.failure("p/m", threshold=2, cooldown=10)
    assert cooldowns.available("p/m")
    assert cooldowns.failure("p/m", threshold=2, cooldown=10)
    assert not cooldowns.available("p/m") and cooldowns.cooled() == {"p/m": 10}
    clock.now += 10
    assert cooldowns.available("p/m") and cooldowns.cooled() == {}


def test_half_open_failure_cools_again_and_success_resets() -> None:
    clock = Clock()
    cooldowns = Cooldowns(clock)
    for _ in range(3):
        cooldowns.failure("p/m", threshold=3, cooldown=5)
    clock.now += 5
    assert cooldowns.failure("p/m", threshold=3, cooldown=5)  # one failure re-trips
    clock.now += 5
    cooldowns.success("p/m")
    assert not cooldowns.failure("p/m", threshold=3, cooldown=5)


def test_zero_cooldown_never_trips() -> None:
    cooldowns = Cooldowns(Clock())
    for _ in range(10):
        assert not cooldowns.failure("p/m", threshold=1, cooldown=0)
    assert cooldowns.available("p/m")
