"""The one retry loop: Retry-After in every form, jittered backoff, the limits that stop it."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from aiservice.transport.retry import RetryPolicy, call_with_retries, parse_retry_after


class Failed(Exception):
    def __init__(self, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(f"failed (retryable={retryable}, retry_after={retry_after})")
        self.retryable, self.retry_after = retryable, retry_after


class Flaky:
    """Raises the given errors in turn, then returns ``"ok"``; records call times."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_after_in_seconds_milliseconds_and_http_dates() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "9"}) == 9.0
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=120), usegmt=True)
    assert later == "Thu, 01 Jan 2026 12:02:00 GMT"
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == 120.0
    earlier = format_datetime(now - timedelta(seconds=5), usegmt=True)
    assert parse_retry_after({"retry-after": earlier}, now=now.timestamp()) == 0.0
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"retry-after": "whenever"}) is None
    assert parse_retry_after({}) is None


async def test_retry_after_as_an_http_date_sets_the_wait() -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    after = parse_retry_after({"retry-after": format_datetime(when, usegmt=True)})
    assert after is not None and 0.5 < after <= 2.0  # whole seconds on the wire
    flaky = Flaky(Failed(retry_after=0.2))
    assert await call_with_retries(RetryPolicy(max_retries=1, backoff=5), flaky) == "ok"
    assert 0.2 <= flaky.times[1] - flaky.times[0] < 2  # the server's wait, not the backoff


def test_backoff_grows_is_capped_and_full_jitter_stays_in_the_window() -> None:
    fixed = RetryPolicy(backoff=0.5, multiplier=2, max_backoff=3, jitter=False)
    assert [fixed.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3]
    jittered = RetryPolicy(backoff=0.5, multiplier=2, max_backoff=3)
    rng = random.Random(7)
    samples = [jittered.backoff_delay(3, rng) for _ in range(200)]
    assert all(0 <= s <= 2.0 for s in samples) and len(set(samples)) > 100


def test_delay_judges_the_failure() -> None:
    policy = RetryPolicy(max_retries=2, max_retry_after=10)
    assert policy.delay(1, ValueError("no retryable attribute")) is None
    assert policy.delay(1, Failed(retryable=False)) is None
    assert policy.delay(3, Failed()) is None  # retries used up
    assert policy.delay(1, Failed(retry_after=4)) == 4
    assert policy.delay(1, Failed(retry_after=11)) is None  # longer than allowed: give up
    assert RetryPolicy(max_retry_after=None).delay(1, Failed(retry_after=3600)) == 3600


async def test_retries_until_success_and_reports_each_wait() -> None:
    seen: list[tuple[int, float]] = []
    flaky = Flaky(Failed(), Failed())
    result = await call_with_retries(
        RetryPolicy(max_retries=2, backoff=0.001),
        flaky,
        on_retry=lambda n, exc, delay: seen.append((n, delay)),
    )
    assert result == "ok" and len(flaky.times) == 3
    assert [n for n, _ in seen] == [1, 2] and all(0 <= d <= 0.002 for _, d in seen)


async def test_the_last_error_is_raised_unchanged() -> None:
    last = Failed()
    flaky = Flaky(Failed(), last)
    with pytest.raises(Failed) as info:
        await call_with_retries(RetryPolicy(max_retries=1, backoff=0.001), flaky)
    assert info.value is last


async def test_errors_that_are_not_retryable_pass_at_once() -> None:
    flaky = Flaky(KeyError("bug"))
    with pytest.raises(KeyError):
        await call_with_retries(RetryPolicy(max_retries=5, backoff=0.001), flaky)
    assert len(flaky.times) == 1


async def test_the_deadline_on_a_given_clock_stops_a_wait_that_would_pass_it() -> None:
    flaky = Flaky(Failed(retry_after=0.5), Failed())
    with pytest.raises(Failed):
        await call_with_retries(
            RetryPolicy(max_retries=3),
            flaky,
            deadline=time.monotonic() + 0.2,
            clock=time.monotonic,
        )
    assert len(flaky.times) == 1


async def test_the_deadline_defaults_to_the_loop_clock() -> None:
    flaky = Flaky(Failed(retry_after=0.05))
    deadline = asyncio.get_running_loop().time() + 5
    assert await call_with_retries(RetryPolicy(), flaky, deadline=deadline) == "ok"
