"""The response cache: hits, stream replay, coalescing in one instance and across two."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiservice.cache.memory import MemoryBackend
from aiservice.config import Settings
from aiservice.errors import UpstreamError
from aiservice.llm.cache.chunks import chunks_to_completion, completion_to_chunks
from aiservice.llm.cache.keys import lease_key
from aiservice.llm.cache.policy import CachePolicy
from aiservice.llm.cache.responses import ResponseCache, Upstream

from .test_chunks import TOOL_STREAM

ON = CachePolicy(read=True, write=True)
KEY = "llm:test"


class ScriptedUpstream:
    """An in-process upstream: replays ``chunks``, counts calls, can pause or fail."""

    def __init__(self, chunks: list[dict[str, Any]] = TOOL_STREAM) -> None:
        self.chunks = chunks
        self.calls = 0
        self.fail_after: int | None = None  # raise after this many chunks
        self.gate: asyncio.Event | None = None  # wait for it before each chunk after the 1st
        self.delay = 0.0
        self.cancelled = False

    async def complete(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail_after is not None:
            raise UpstreamError("upstream broke")
        return chunks_to_completion(self.chunks)

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        try:
            await asyncio.sleep(self.delay)
            for i, chunk in enumerate(self.chunks):
                if self.fail_after is not None and i == self.fail_after:
                    raise UpstreamError("upstream broke midway")
                gate = self.gate
                if i and gate is not None:
                    await gate.wait()
                    gate.clear()
                yield chunk
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    def upstream(self) -> Upstream:
        return Upstream(self.complete, self.stream, lambda: {"provider": "p", "model": "m"})


def make_cache(backend: MemoryBackend | None = None, **cache: Any) -> ResponseCache:
    settings = Settings(cache={"namespace": "t", **cache})
    return ResponseCache(MemoryBackend(settings) if backend is None else backend, settings)


async def collect(cache: ResponseCache, up: ScriptedUpstream, policy: CachePolicy = ON) -> Any:
    result = await cache.stream(KEY, policy, up.upstream())
    return result.status, [c async for c in result.chunks]


async def test_second_identical_request_is_a_hit_without_upstream_call() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    first = await cache.complete(KEY, ON, up.upstream())
    second = await cache.complete(KEY, ON, up.upstream())
    assert (first.status, second.status) == ("miss", "hit")
    assert (first.upstream_called, second.upstream_called) == (True, False)
    assert second.completion == first.completion
    assert second.meta == {"provider": "p", "model": "m"}
    assert up.calls == 1


async def test_stream_replays_chunk_by_chunk_including_tool_call_deltas() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    assert await collect(cache, up) == ("miss", TOOL_STREAM)
    assert await collect(cache, up) == ("hit", TOOL_STREAM)
    assert up.calls == 1


async def test_streamed_entry_answers_a_non_stream_request_and_vice_versa() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    await collect(cache, up)
    hit = await cache.complete(KEY, ON, up.upstream())
    assert hit.status == "hit" and hit.completion == chunks_to_completion(TOOL_STREAM)

    other, up2 = make_cache(), ScriptedUpstream()
    completion = (await other.complete(KEY, ON, up2.upstream())).completion
    assert await collect(other, up2) == ("hit", completion_to_chunks(completion))
    assert up2.calls == 1


async def test_errored_stream_is_never_stored() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    up.fail_after = 3
    result = await cache.stream(KEY, ON, up.upstream())
    received = []
    with pytest.raises(UpstreamError):
        async for chunk in result.chunks:
            received.append(chunk)
    assert received == TOOL_STREAM[:3]
    up.fail_after = None
    assert (await collect(cache, up))[0] == "miss"
    assert up.calls == 2


async def test_cancelled_stream_is_never_stored_and_stops_upstream() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    up.gate = asyncio.Event()
    result = await cache.stream(KEY, ON, up.upstream())
    iterator = aiter(result.chunks)
    assert await anext(iterator) == TOOL_STREAM[0]
    await iterator.aclose()  # the client went away
    await asyncio.sleep(0.01)
    assert up.cancelled
    up.gate = None
    assert (await collect(cache, up))[0] == "miss"
    assert up.calls == 2


async def test_error_before_the_first_chunk_raises_from_stream_itself() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    up.fail_after = 0
    with pytest.raises(UpstreamError):
        await cache.stream(KEY, ON, up.upstream())


async def test_concurrent_identical_requests_share_one_upstream_call() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    up.delay = 0.05
    results = await asyncio.gather(*(cache.complete(KEY, ON, up.upstream()) for _ in range(20)))
    assert up.calls == 1
    statuses = sorted(r.status for r in results)
    assert statuses == ["coalesced"] * 19 + ["miss"]
    assert sum(r.upstream_called for r in results) == 1
    assert all(r.completion == results[0].completion for r in results)


async def test_stream_follower_receives_chunks_as_they_arrive() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    up.gate = asyncio.Event()
    leader = await cache.stream(KEY, ON, up.upstream())
    lead_iter = aiter(leader.chunks)
    assert await anext(lead_iter) == TOOL_STREAM[0]

    follower = await cache.stream(KEY, ON, up.upstream())
    assert follower.status == "coalesced"
    follow_iter = aiter(follower.chunks)
    assert await anext(follow_iter) == TOOL_STREAM[0]  # what was produced before it joined
    pending = asyncio.ensure_future(anext(follow_iter))
    await asyncio.sleep(0.02)
    assert not pending.done()  # the next chunk does not exist upstream yet
    up.gate.set()
    assert await asyncio.wait_for(pending, 1) == TOOL_STREAM[1]
    gate, up.gate = up.gate, None  # let the rest flow
    gate.set()
    rest_follow = [c async for c in follow_iter]
    rest_lead = [c async for c in lead_iter]
    assert [TOOL_STREAM[0], TOOL_STREAM[1], *rest_follow] == TOOL_STREAM
    assert [TOOL_STREAM[0], *rest_lead] == TOOL_STREAM
    assert up.calls == 1


async def test_no_cache_skips_the_read_but_stores_the_fresh_answer() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    await cache.complete(KEY, ON, up.upstream())
    fresh = await cache.complete(KEY, CachePolicy(read=False, write=True), up.upstream())
    assert fresh.status == "bypass" and up.calls == 2
    status, chunks = await collect(cache, up, CachePolicy(read=False, write=True))
    assert status == "bypass" and chunks == TOOL_STREAM and up.calls == 3
    assert (await collect(cache, up))[0] == "hit"


async def test_no_store_answers_but_leaves_nothing_behind() -> None:
    cache, up = make_cache(), ScriptedUpstream()
    result = await cache.complete(KEY, CachePolicy(read=True, write=False), up.upstream())
    assert result.status == "miss"
    assert (await cache.complete(KEY, ON, up.upstream())).status == "miss"
    assert up.calls == 2


async def test_custom_ttl_expires_the_entry() -> None:
    now = [1000.0]
    settings = Settings(cache={"namespace": "t"})
    cache = make_cache(MemoryBackend(settings, clock=lambda: now[0]))
    up = ScriptedUpstream()
    await cache.complete(KEY, CachePolicy(True, True, ttl=5), up.upstream())
    now[0] += 4
    assert (await cache.complete(KEY, ON, up.upstream())).status == "hit"
    now[0] += 2
    assert (await cache.complete(KEY, ON, up.upstream())).status == "miss"


async def test_second_instance_waits_for_the_lease_holder_entry() -> None:
    shared = MemoryBackend(Settings(cache={"namespace": "t"}))
    first, second = make_cache(shared), make_cache(shared)  # two instances, one backend
    up = ScriptedUpstream()
    up.delay = 0.1

    async def later() -> Any:
        await asyncio.sleep(0.02)  # the first instance holds the lease by now
        return await second.complete(KEY, ON, up.upstream())

    a, b = await asyncio.gather(first.complete(KEY, ON, up.upstream()), later())
    assert up.calls == 1
    assert sorted([a.status, b.status]) == ["coalesced", "miss"]
    assert await shared.get(lease_key(KEY)) is None  # released


async def test_lease_wait_is_bounded_then_falls_through() -> None:
    shared = MemoryBackend(Settings(cache={"namespace": "t"}))
    await shared.add(lease_key(KEY), b"another-instance", 60)  # a holder that never answers
    cache, up = make_cache(shared, wait_ms=150), ScriptedUpstream()
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await cache.complete(KEY, ON, up.upstream())
    assert result.status == "miss" and up.calls == 1
    assert 0.14 <= loop.time() - started < 1.0
    # The lease still belongs to the other instance: a waiter never releases it.
    assert await shared.get(lease_key(KEY)) == b"another-instance"


async def test_released_lease_without_entry_lets_a_waiter_take_over() -> None:
    shared = MemoryBackend(Settings(cache={"namespace": "t"}))
    await shared.add(lease_key(KEY), b"failing-instance", 60)
    cache, up = make_cache(shared, wait_ms=5000), ScriptedUpstream()
    task = asyncio.ensure_future(cache.complete(KEY, ON, up.upstream()))
    await asyncio.sleep(0.05)
    assert not task.done()
    await shared.delete(lease_key(KEY))  # the holder failed: released, nothing stored
    result = await asyncio.wait_for(task, 2)
    assert result.status == "miss" and up.calls == 1


async def test_this_instances_orphaned_lease_is_taken_over_at_once() -> None:
    # The state a lost store leaves: the entry and the lease release never reached the
    # backend (fail-open cool-down, a restarted Redis), so the lease still holds this
    # instance's id and no flight of this instance will ever answer it.
    shared = MemoryBackend(Settings(cache={"namespace": "t"}))
    cache, up = make_cache(shared, wait_ms=5000), ScriptedUpstream()
    await shared.add(lease_key(KEY), cache.instance, 60)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await cache.complete(KEY, ON, up.upstream())
    assert result.status == "miss" and up.calls == 1
    assert loop.time() - started < 1.0  # not the 5 s wait for an answer that never comes
    assert await shared.get(lease_key(KEY)) is None  # released after the store
    assert (await cache.complete(KEY, ON, up.upstream())).status == "hit"


class SlowStore(MemoryBackend):
    """Entries reach the backend ``delay`` seconds after they are written."""

    delay = 0.2

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await asyncio.sleep(self.delay)
        await super().set(key, value, ttl)


async def test_a_request_during_the_last_flights_store_gets_its_entry() -> None:
    shared = SlowStore(Settings(cache={"namespace": "t"}))
    cache, up = make_cache(shared, wait_ms=5000), ScriptedUpstream()
    first = asyncio.ensure_future(cache.complete(KEY, ON, up.upstream()))
    while up.calls == 0 or not first.done():
        await asyncio.sleep(0.01)  # the first reader is answered before its store ends
    assert first.result().status == "miss"
    second = await cache.complete(KEY, ON, up.upstream())  # the entry is still being written
    assert second.status == "coalesced" and up.calls == 1
    assert second.completion == first.result().completion
