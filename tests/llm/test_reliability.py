"""Retry policy (full jitter, Retry-After) and the cooldown circuit breaker."""

from __future__ import annotations

import asyncio
import time

import pytest

from aiservice.llm.reliability import Cooldowns, RetryPolicy, Ticket, call_with_retries
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


KEY = "p/m"


def fail(
    breaker: Cooldowns, ticket: Ticket | None, threshold: int = 2, cooldown: float = 10
) -> bool:
    assert ticket is not None
    return breaker.failure(ticket, threshold=threshold, cooldown=cooldown)


def opened(threshold: int = 2, cooldown: float = 10) -> tuple[Cooldowns, Clock]:
    clock = Clock()
    breaker = Cooldowns(clock)
    for _ in range(threshold):
        fail(breaker, breaker.acquire(KEY), threshold, cooldown)
    assert breaker.state(KEY) == "open"
    return breaker, clock


def test_closed_counts_consecutive_failures_and_opens_at_the_threshold() -> None:
    clock = Clock()
    breaker = Cooldowns(clock)
    assert not fail(breaker, breaker.acquire(KEY), threshold=3)
    assert not fail(breaker, breaker.acquire(KEY), threshold=3)
    assert breaker.state(KEY) == "closed" and breaker.available(KEY)
    assert fail(breaker, breaker.acquire(KEY), threshold=3)
    assert breaker.state(KEY) == "open" and breaker.cooled() == {KEY: 10}
    assert breaker.acquire(KEY) is None and not breaker.available(KEY)


def test_a_success_in_between_resets_the_count() -> None:
    breaker = Cooldowns(Clock())
    fail(breaker, breaker.acquire(KEY), threshold=2)
    ticket = breaker.acquire(KEY)
    assert ticket is not None
    breaker.success(ticket)
    assert not fail(breaker, breaker.acquire(KEY), threshold=2)
    assert breaker.state(KEY) == "closed"


def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    breaker, clock = opened()
    clock.now += 9.9
    assert breaker.acquire(KEY) is None
    clock.now += 0.1
    assert breaker.state(KEY) == "half_open" and breaker.available(KEY)
    probe = breaker.acquire(KEY)
    assert probe is not None and probe.probe
    # While the probe is in flight every other request keeps skipping the deployment.
    assert breaker.acquire(KEY) is None and breaker.acquire(KEY) is None
    assert not breaker.available(KEY)


def test_a_probe_success_closes_the_breaker() -> None:
    breaker, clock = opened()
    clock.now += 10
    probe = breaker.acquire(KEY)
    assert probe is not None
    breaker.success(probe)
    assert breaker.state(KEY) == "closed" and breaker.cooled() == {}
    after = breaker.acquire(KEY)
    assert after is not None and not after.probe
    assert not fail(breaker, after)  # the count starts again from zero


def test_a_probe_failure_reopens_for_another_full_cooldown() -> None:
    breaker, clock = opened(threshold=3, cooldown=5)
    clock.now += 5
    probe = breaker.acquire(KEY)
    assert fail(breaker, probe, threshold=3, cooldown=5)  # one failure is enough
    assert breaker.state(KEY) == "open" and breaker.remaining(KEY) == 5
    assert breaker.acquire(KEY) is None
    clock.now += 5
    next_probe = breaker.acquire(KEY)
    assert next_probe is not None and next_probe.probe


def test_a_probe_that_decides_nothing_frees_the_slot() -> None:
    breaker, clock = opened()
    clock.now += 10
    probe = breaker.acquire(KEY)
    assert probe is not None
    breaker.release(probe)  # cancelled, or the request itself was bad (a 4xx)
    assert breaker.state(KEY) == "half_open"
    again = breaker.acquire(KEY)
    assert again is not None and again.probe


def test_a_success_from_before_the_opening_does_not_close_it() -> None:
    clock = Clock()
    breaker = Cooldowns(clock)
    slow = breaker.acquire(KEY)  # starts while closed, answers late
    assert slow is not None
    for _ in range(2):
        fail(breaker, breaker.acquire(KEY))
    assert breaker.state(KEY) == "open"
    breaker.success(slow)
    assert breaker.state(KEY) == "open" and breaker.remaining(KEY) == 10
    clock.now += 10
    probe = breaker.acquire(KEY)
    assert probe is not None and probe.probe
    breaker.success(slow)  # still stale in half-open: the probe decides
    assert breaker.acquire(KEY) is None
    assert not breaker.current(slow)


def test_a_late_failure_from_before_the_opening_does_not_extend_it() -> None:
    clock = Clock()
    breaker = Cooldowns(clock)
    slow = breaker.acquire(KEY)
    for _ in range(2):
        fail(breaker, breaker.acquire(KEY))
    clock.now += 6
    assert not fail(breaker, slow)
    assert breaker.remaining(KEY) == 4


def test_stale_results_after_a_probe_closed_it_change_nothing() -> None:
    breaker, clock = opened(threshold=1)
    # a request that began before the opening, still running through open and half-open
    clock.now += 10
    probe = breaker.acquire(KEY)
    assert probe is not None
    breaker.success(probe)
    stale = Ticket(KEY, 0)
    assert not fail(breaker, stale, threshold=1)
    assert breaker.state(KEY) == "closed"
    fresh = breaker.acquire(KEY)
    assert fail(breaker, fresh, threshold=1)


def test_current_tells_a_retry_loop_to_stop_once_the_breaker_opened() -> None:
    breaker = Cooldowns(Clock())
    mine = breaker.acquire(KEY)
    assert mine is not None and breaker.current(mine)
    for _ in range(2):
        fail(breaker, breaker.acquire(KEY))
    assert not breaker.current(mine)


def test_zero_cooldown_never_opens() -> None:
    breaker = Cooldowns(Clock())
    for _ in range(10):
        assert not fail(breaker, breaker.acquire(KEY), threshold=1, cooldown=0)
    assert breaker.available(KEY) and breaker.state(KEY) == "closed"


def test_reset_closes_at_once() -> None:
    breaker, _ = opened()
    breaker.reset(KEY)
    assert breaker.state(KEY) == "closed" and breaker.acquire(KEY) is not None


async def test_retries_stop_when_give_up_says_so() -> None:
    flaky = Flaky(status(500), status(500), status(500))
    with pytest.raises(ProviderError):
        await call_with_retries(
            RetryPolicy(max_retries=3, backoff=0.001), flaky, give_up=lambda: True
        )
    assert len(flaky.times) == 1


async def test_retries_stop_when_the_wait_would_pass_the_deadline() -> None:
    flaky = Flaky(status(429, retry_after=0.5), status(500))
    deadline = asyncio.get_running_loop().time() + 0.2
    with pytest.raises(ProviderError) as info:
        await call_with_retries(RetryPolicy(max_retries=3), flaky, deadline=deadline)
    assert info.value.status == 429 and len(flaky.times) == 1
