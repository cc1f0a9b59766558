"""Fail open: a down or slow backend is bypassed quickly, warned about once, counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from aiservice.cache.base import Consume, ConsumeResult
from aiservice.cache.failopen import (
    STATE_ERRORS,
    FailOpenBackend,
    StateUnavailableError,
    StrictBackend,
)
from aiservice.cache.memory import MemoryBackend
from aiservice.cache.redis import RedisBackend
from aiservice.config import Settings
from tests.conftest import JsonLogCapture
from tests.support.servers import free_port

from .redis_server import redis_process


class SlowBackend(MemoryBackend):
    """A working memory backend whose every operation takes ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(Settings())
        self.delay = delay

    async def get(self, key: str) -> bytes | None:
        await asyncio.sleep(self.delay)
        return await super().get(key)

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        await asyncio.sleep(self.delay)
        return await super().consume(items)


def down_redis() -> RedisBackend:
    """A Redis backend pointing at a port where nothing listens."""
    return RedisBackend(Settings(cache={"url": f"redis://127.0.0.1:{free_port()}/0"}))


def errors(reason: str, operation: str, backend: str) -> float:
    return STATE_ERRORS.labels(backend, operation, reason)._value.get()


async def test_unreachable_backend_answers_nothing_cached() -> None:
    wrapper = FailOpenBackend(down_redis(), timeout=0.5)
    before = errors("error", "get", "redis")
    assert await wrapper.get("k") is None
    assert errors("error", "get", "redis") == before + 1
    # Cooling down now: later calls skip the backend, and answer "nothing cached".
    await wrapper.set("k", b"v")
    assert await wrapper.add("lease", b"x", 10) is True
    assert await wrapper.compare_and_set("lease", b"x", b"x", 10) is True  # proceed as owner
    assert await wrapper.incr("c", 3, 10) == 3
    await wrapper.delete("k")
    with pytest.raises(StateUnavailableError):
        await wrapper.consume([Consume("c", 1, 10, limit=5)])
    await wrapper.aclose()


async def test_slow_backend_is_bounded_by_the_timeout() -> None:
    wrapper = FailOpenBackend(SlowBackend(delay=1.0), timeout=0.05)
    started = time.perf_counter()
    assert await wrapper.get("k") is None
    assert time.perf_counter() - started < 0.5
    assert not wrapper.available


async def test_backend_is_retried_after_the_cooldown() -> None:
    now = [0.0]
    slow = SlowBackend(delay=0.2)
    wrapper = FailOpenBackend(slow, timeout=0.05, cooldown=1.0, clock=lambda: now[0])
    await slow.set("k", b"v")
    assert await wrapper.get("k") is None  # timed out
    slow.delay = 0
    assert await wrapper.get("k") is None  # cooling down: not even tried
    now[0] += 1.5
    assert await wrapper.get("k") == b"v"


async def test_warning_is_logged_at_most_once_per_interval(json_logs: JsonLogCapture) -> None:
    now = [0.0]
    wrapper = FailOpenBackend(
        SlowBackend(delay=0.2), timeout=0.01, cooldown=0, warn_interval=60, clock=lambda: now[0]
    )
    for _ in range(3):
        await wrapper.get("k")
    now[0] += 61
    await wrapper.get("k")
    warnings = [line for line in json_logs.lines if "unavailable" in line]
    assert len(warnings) == 2


async def test_healthy_backend_passes_through() -> None:
    wrapper = FailOpenBackend(MemoryBackend(Settings()), timeout=0.5)
    await wrapper.set("k", b"v")
    assert await wrapper.checked_get("k") == b"v"
    assert (await wrapper.consume([Consume("c", 1, 10, limit=1)])).allowed
    assert not (await wrapper.consume([Consume("c", 1, 10, limit=1)])).allowed
    await wrapper.ping()


async def test_a_busy_event_loop_is_not_blamed_on_the_backend() -> None:
    """The backend answers in 10 ms, but the loop is blocked past the 50 ms deadline."""
    wrapper = FailOpenBackend(SlowBackend(delay=0.01), timeout=0.05)
    await wrapper.inner.set("k", b"v")

    async def hog_the_loop() -> None:
        await asyncio.sleep(0.005)
        time.sleep(0.12)  # CPU-bound work elsewhere in the process, no await

    value, _ = await asyncio.gather(wrapper.checked_get("k"), hog_the_loop())
    assert value == b"v"
    assert wrapper.available


async def test_a_late_deadline_still_bounds_a_slow_backend() -> None:
    wrapper = FailOpenBackend(SlowBackend(delay=1.0), timeout=0.05)

    async def hog_the_loop() -> None:
        await asyncio.sleep(0.005)
        time.sleep(0.12)

    started = time.perf_counter()
    value, _ = await asyncio.gather(wrapper.get("k"), hog_the_loop())
    assert value is None
    assert time.perf_counter() - started < 0.5
    assert not wrapper.available


async def test_after_the_cooldown_one_call_probes_while_the_others_bypass() -> None:
    now = [0.0]
    slow = SlowBackend(delay=0.2)
    wrapper = FailOpenBackend(slow, timeout=0.05, cooldown=1.0, clock=lambda: now[0])
    await slow.set("k", b"v")
    assert await wrapper.get("k") is None  # timed out: cooling down
    now[0] += 1.5
    probe = asyncio.create_task(wrapper.get("k"))
    await asyncio.sleep(0.01)  # the probe is waiting on the (still slow) backend
    started = time.perf_counter()
    assert await wrapper.get("k") is None  # bypassed at once, not a second timeout
    assert time.perf_counter() - started < 0.02
    assert await probe is None
    slow.delay = 0
    now[0] += 1.5
    assert await wrapper.get("k") == b"v"  # the next probe succeeds: back to normal
    assert wrapper.available and await wrapper.get("k") == b"v"


async def test_warm_connects_and_loads_the_scripts_before_the_first_request() -> None:
    with redis_process() as server:
        backend = RedisBackend(Settings(cache={"url": server.url}))
        wrapper = FailOpenBackend(backend, timeout=0.05)
        await wrapper.warm()
        probe = aioredis.Redis.from_url(server.url)
        try:
            loaded = await probe.script_exists(backend._incr.sha, backend._consume.sha)
            clients = await probe.client_list()
        finally:
            await probe.aclose()
        await wrapper.aclose()
    assert loaded == [True, True]
    assert len(clients) >= 2  # the probe's and the warmed pool's connection
    assert wrapper.available


async def test_warm_with_the_backend_down_neither_fails_nor_waits() -> None:
    wrapper = FailOpenBackend(down_redis(), timeout=0.05)
    started = time.perf_counter()
    await wrapper.warm()  # startup goes on: the service runs uncached
    assert time.perf_counter() - started < 1.5
    assert not wrapper.available
    await wrapper.aclose()


async def test_strict_compare_and_set_raises_instead_of_proceeding() -> None:
    strict = StrictBackend(down_redis(), timeout=0.5)
    with pytest.raises(StateUnavailableError):
        await strict.compare_and_set("lease", b"x", b"x", 10)
    working = StrictBackend(MemoryBackend(Settings()), timeout=0.5)
    await working.set("lease", b"x", 10)
    assert await working.compare_and_set("lease", b"x", b"y", 10) is True
    assert await working.compare_and_set("lease", b"x", b"z", 10) is False
