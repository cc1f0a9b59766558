"""Rate limits and budgets per key and global, on memory, the real Redis and a Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiservice.cache.base import StateBackend
from aiservice.cache.failopen import FailOpenBackend
from aiservice.cache.memory import MemoryBackend
from aiservice.cache.ratelimit import REJECTIONS, RateLimiter
from aiservice.cache.redis import RedisBackend
from aiservice.config import RateLimitValues, Settings
from aiservice.errors import RateLimitError, ServiceUnavailableError
from aiservice.llm.accounting import UsageRecord
from aiservice.security.apikeys import Principal
from tests.support.servers import free_port

from .redis_targets import SINGLE, RedisTarget, cluster_target

ALICE = Principal("alice")
BOB = Principal("bob")
START = 1_800_000_000.0 - 1_800_000_000.0 % 86_400 + 3600  # 01:00 UTC, start of a minute


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """``make_limiter(limits, clock=...)``: limiters sharing one backend (like replicas)."""
    namespace = f"aiservice-test-rl-{uuid.uuid4().hex[:10]}"
    target: RedisTarget = (
        cluster_target(request.getfixturevalue("redis_cluster_server"))
        if request.param == "redis-cluster"
        else SINGLE
    )
    settings = Settings(cache={"namespace": namespace, **target.cache})
    backend: StateBackend = (
        MemoryBackend(settings) if request.param == "memory" else RedisBackend(settings)
    )

    def make(limits: dict[str, Any], clock: Clock | None = None) -> RateLimiter:
        return RateLimiter(backend, Settings(limits=limits), clock=clock or Clock())

    yield make
    await backend.aclose()
    if isinstance(backend, RedisBackend):
        await target.cleanup(namespace)


def usage(principal: Principal, tokens: int = 0, cost: float = 0.0) -> UsageRecord:
    return UsageRecord("chat", "chat", "p", "m", tokens, 0, cost, principal)


async def test_requests_per_minute_per_key(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"requests_per_minute": 3})
    remaining = [
        (await limiter.admit(ALICE)).headers["x-ratelimit-remaining-requests"] for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(RateLimitError) as info:
        await limiter.admit(ALICE)
    error = info.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.headers["retry-after"] == "60"
    assert error.headers["x-ratelimit-limit-requests"] == "3"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    await limiter.admit(BOB)  # another key has its own budget


async def test_rejected_request_is_not_counted_and_window_resets(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter({"requests_per_minute": 1}, clock)
    await limiter.admit(ALICE)
    for _ in range(3):
        with pytest.raises(RateLimitError):
            await limiter.admit(ALICE)
    clock.now += 60
    headers = (await limiter.admit(ALICE)).headers
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_global_limit_spans_every_key(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"requests_per_minute": 10, "global": {"requests_per_minute": 2}})
    before = REJECTIONS.labels("global", "requests")._value.get()
    await limiter.admit(ALICE)
    await limiter.admit(BOB)
    with pytest.raises(RateLimitError):
        await limiter.admit(Principal("carol"))
    assert REJECTIONS.labels("global", "requests")._value.get() == before + 1


async def test_per_key_override_replaces_the_default(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"requests_per_minute": 5})
    strict = Principal("strict", limits=RateLimitValues(requests_per_minute=1))
    await limiter.admit(strict)
    with pytest.raises(RateLimitError):
        await limiter.admit(strict)
    for _ in range(5):
        await limiter.admit(ALICE)


async def test_tokens_per_minute_are_charged_from_reported_usage(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    limiter = make_limiter({"tokens_per_minute": 100}, clock)
    await limiter.admit(ALICE)
    await limiter.record(usage(ALICE, tokens=60))
    headers = (await limiter.admit(ALICE)).headers
    assert headers["x-ratelimit-remaining-tokens"] == "40"
    await limiter.record(usage(ALICE, tokens=40))
    with pytest.raises(RateLimitError) as info:
        await limiter.admit(ALICE)
    assert info.value.headers["x-ratelimit-remaining-tokens"] == "0"
    clock.now += 60
    await limiter.admit(ALICE)


async def test_daily_budget_rejects_with_budget_exceeded_until_midnight(
    make_limiter: MakeLimiter,
) -> None:
    clock = Clock()
    limiter = make_limiter({"budget_usd_per_day": 0.01}, clock)
    await limiter.admit(ALICE)
    await limiter.record(usage(ALICE, cost=0.004))
    await limiter.admit(ALICE)
    await limiter.record(usage(ALICE, cost=0.006))
    with pytest.raises(RateLimitError) as info:
        await limiter.admit(ALICE)
    assert info.value.code == "budget_exceeded"
    assert info.value.headers["retry-after"] == str(23 * 3600)  # it is 01:00 UTC
    await limiter.admit(BOB)
    clock.now += 23 * 3600
    await limiter.admit(ALICE)


async def test_headers_show_the_tightest_scope(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter({"requests_per_minute": 100, "global": {"requests_per_minute": 3}})
    headers = (await limiter.admit(ALICE)).headers
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "2"


async def test_replicas_sharing_a_backend_share_the_limit(make_limiter: MakeLimiter) -> None:
    first, second = (
        make_limiter({"requests_per_minute": 2}),
        make_limiter({"requests_per_minute": 2}),
    )
    await first.admit(ALICE)
    await second.admit(ALICE)
    with pytest.raises(RateLimitError):
        await first.admit(ALICE)


def down_backend() -> FailOpenBackend:
    url = f"redis://127.0.0.1:{free_port()}/0"
    return FailOpenBackend(RedisBackend(Settings(cache={"url": url})), timeout=0.5)


async def test_backend_outage_allows_by_default() -> None:
    limiter = RateLimiter(down_backend(), Settings(limits={"requests_per_minute": 1}))
    for _ in range(3):
        assert (await limiter.admit(ALICE)).headers == {}
    await limiter.record(usage(ALICE, tokens=5))  # charging is skipped, not raised


async def test_backend_outage_denies_when_configured() -> None:
    limits = {"requests_per_minute": 1, "on_backend_error": "deny"}
    limiter = RateLimiter(down_backend(), Settings(limits=limits))
    with pytest.raises(ServiceUnavailableError) as info:
        await limiter.admit(ALICE)
    assert info.value.status_code == 503 and info.value.headers["retry-after"] == "1"


async def test_no_configured_limit_never_touches_the_backend() -> None:
    limiter = RateLimiter(down_backend(), Settings(limits={"on_backend_error": "deny"}))
    assert (await limiter.admit(ALICE)).headers == {}
