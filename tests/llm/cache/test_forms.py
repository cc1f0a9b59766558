"""A non-stream miss answers with the upstream completion as is and stores it; each kind
of request gets an entry of its own kind unchanged and the other kind converted."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from aiservice.errors import UpstreamError
from aiservice.llm.cache.chunks import chunks_to_completion, completion_to_chunks
from aiservice.llm.cache.policy import CachePolicy

from .test_chunks import TOOL_STREAM
from .test_entries import COMPLETION
from .test_responses import KEY, ON, ScriptedUpstream, collect, make_cache


class WholeUpstream(ScriptedUpstream):
    """Answers non-stream calls with :data:`COMPLETION`, a completion the chunk round trip
    would not reproduce (extra fields, no ``logprobs``)."""

    async def complete(self) -> dict[str, Any]:
        await super().complete()
        return copy.deepcopy(COMPLETION)


async def stored(cache: Any) -> dict[str, Any]:
    raw = await cache.backend.get(KEY)
    return dict(json.loads(raw)) if raw is not None else {}


async def started(cache: Any) -> None:
    """Until the leader's flight runs: the requests made next follow it."""
    while KEY not in cache.flights:
        await asyncio.sleep(0)


async def test_non_stream_miss_answers_and_stores_the_upstream_completion_as_is() -> None:
    cache, up = make_cache(), WholeUpstream()
    miss = await cache.complete(KEY, ON, up.upstream())
    assert miss.status == "miss" and miss.completion == COMPLETION
    entry = await stored(cache)
    assert entry["completion"] == COMPLETION and "chunks" not in entry
    hit = await cache.complete(KEY, ON, up.upstream())
    assert hit.status == "hit" and hit.completion == miss.completion
    assert hit.meta == {"provider": "p", "model": "m"}
    assert up.calls == 1


async def test_stream_hit_on_a_completion_entry_replays_the_derived_chunks() -> None:
    cache, up = make_cache(), WholeUpstream()
    await cache.complete(KEY, ON, up.upstream())
    assert await collect(cache, up) == ("hit", completion_to_chunks(COMPLETION))
    assert up.calls == 1


async def test_non_stream_hit_on_a_chunk_entry_merges_the_chunks() -> None:
    cache, up = make_cache(), WholeUpstream()
    assert await collect(cache, up) == ("miss", TOOL_STREAM)
    assert (await stored(cache))["chunks"] == TOOL_STREAM
    hit = await cache.complete(KEY, ON, up.upstream())
    assert hit.status == "hit" and hit.completion == chunks_to_completion(TOOL_STREAM)
    assert up.calls == 1


async def test_no_cache_request_stores_its_completion_as_is() -> None:
    cache, up = make_cache(), WholeUpstream()
    fresh = await cache.complete(KEY, CachePolicy(read=False, write=True), up.upstream())
    assert fresh.status == "bypass" and fresh.completion == COMPLETION
    assert (await stored(cache))["completion"] == COMPLETION
    assert (await cache.complete(KEY, ON, up.upstream())).completion == COMPLETION


async def test_non_stream_leader_answers_stream_and_non_stream_followers() -> None:
    cache, up = make_cache(), WholeUpstream()
    up.delay = 0.05
    lead = asyncio.ensure_future(cache.complete(KEY, ON, up.upstream()))
    await started(cache)
    follow_whole = asyncio.ensure_future(cache.complete(KEY, ON, up.upstream()))
    follow_stream = asyncio.ensure_future(collect(cache, up))
    leader, whole, streamed = await asyncio.gather(lead, follow_whole, follow_stream)
    assert up.calls == 1
    assert (leader.status, whole.status) == ("miss", "coalesced")
    assert leader.completion == whole.completion == COMPLETION
    assert streamed == ("coalesced", completion_to_chunks(COMPLETION))
    assert (leader.upstream_called, whole.upstream_called) == (True, False)


async def test_stream_leader_answers_non_stream_followers_with_the_merged_chunks() -> None:
    cache, up = make_cache(), WholeUpstream()
    up.delay = 0.05
    lead = asyncio.ensure_future(collect(cache, up))
    await started(cache)
    follower = await cache.complete(KEY, ON, up.upstream())
    assert await lead == ("miss", TOOL_STREAM)
    assert follower.status == "coalesced"
    assert follower.completion == chunks_to_completion(TOOL_STREAM)
    assert up.calls == 1


async def test_failed_non_stream_leader_fails_a_stream_follower_before_its_first_chunk() -> None:
    cache, up = make_cache(), WholeUpstream()
    up.delay, up.fail_after = 0.05, 0
    lead = asyncio.ensure_future(cache.complete(KEY, ON, up.upstream()))
    await started(cache)
    with pytest.raises(UpstreamError):
        await cache.stream(KEY, ON, up.upstream())  # an HTTP status, not a broken stream
    with pytest.raises(UpstreamError):
        await lead
    assert await stored(cache) == {}


async def test_an_entry_stored_by_the_previous_release_is_a_hit_for_both_kinds() -> None:
    cache, up = make_cache(), WholeUpstream()
    old = {"v": 1, "chunks": TOOL_STREAM, "meta": {"provider": "p", "model": "old"}}
    await cache.backend.set(KEY, json.dumps(old, separators=(",", ":")).encode(), 60)
    hit = await cache.complete(KEY, ON, up.upstream())
    assert hit.status == "hit" and hit.completion == chunks_to_completion(TOOL_STREAM)
    assert hit.meta["model"] == "old"
    assert await collect(cache, up) == ("hit", TOOL_STREAM)
    assert up.calls == 0
