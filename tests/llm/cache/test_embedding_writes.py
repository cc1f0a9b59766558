"""Embeddings cache writes: a large batch's entries are encoded off the event loop (health
probes keep answering meanwhile), a small one inline; either way the entries read back as
the very vectors that were answered. Real Redis, the app in-process."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import redis.asyncio as aioredis

from aiservice import Settings
from aiservice.llm.cache.calls import OFFLOAD_FLOATS, _entries
from tests.conftest import app_client
from tests.support.redis_keys import REDIS_URL, redis_namespace

EMBEDDINGS = "/v1/embeddings"


def settings(namespace: str) -> Settings:
    return Settings(
        cache={
            "backend": "redis",
            "url": REDIS_URL,
            "namespace": namespace,
            "mode": "on",
            # One connection per entry of the batch: cached_embed gathers its gets and sets,
            # and the pool raises instead of waiting beyond max_connections.
            "max_connections": 512,
            "timeout_ms": 5000,
        },
    )


def body(texts: list[str], dimensions: int) -> dict[str, Any]:
    return {"model": "fake", "input": texts, "dimensions": dimensions, "encoding_format": "float"}


async def stored_vectors(namespace: str) -> list[list[float]]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        return [json.loads(raw) for raw in await client.mget(keys)] if keys else []
    finally:
        await client.aclose()


async def test_a_large_batch_is_encoded_off_the_loop_while_health_probes_answer() -> None:
    texts, dimensions = [f"text {i}" for i in range(256)], 4096  # 1 Mi floats
    sample = [[i / 7 for i in range(dimensions)] for _ in range(len(texts))]
    start = time.process_time()
    _entries(sample)
    inline = time.process_time() - start  # what encoding this batch on the loop would block
    assert inline > 0.3, inline  # big enough that a stall of that size would show

    with redis_namespace("embed-writes") as namespace:
        async with app_client(settings(namespace)) as client:
            # Warm up: the first request's imports and the pool's connections (one per
            # entry, opened on the loop) are not what is measured.
            warm = [f"warm {i}" for i in range(len(texts))]
            assert (await client.post(EMBEDDINGS, json=body(warm, 8))).status_code == 200
            embed = asyncio.create_task(client.post(EMBEDDINGS, json=body(texts, dimensions)))
            # When each probe was answered: a stall of the loop anywhere (in a probe or
            # between two) is a gap between two answers.
            answered = [time.perf_counter()]
            while not embed.done():
                assert (await client.get("/health/live")).status_code == 200
                answered.append(time.perf_counter())
                await asyncio.sleep(0.002)
            first = await embed
            again = await client.post(EMBEDDINGS, json=body(texts, dimensions))
        assert first.status_code == 200, first.text
        assert first.headers["x-aiservice-cache"] == "miss"
        vectors = [d["embedding"] for d in first.json()["data"]]
        stored = await stored_vectors(namespace)

    # The loop answered all along: no probe waited anywhere near the inline encoding.
    gaps = [later - earlier for earlier, later in zip(answered, answered[1:], strict=False)]
    assert len(gaps) >= 5, gaps
    assert max(gaps) < inline / 2, (max(gaps), inline)
    # Round trip: each entry is an answered vector, bit for bit, and a hit answers them.
    assert len(stored) == 2 * len(texts)  # the warm-up's entries and these
    assert set(map(tuple, vectors)) <= set(map(tuple, stored))
    assert again.headers["x-aiservice-cache"] == "hit"
    assert [d["embedding"] for d in again.json()["data"]] == vectors


async def test_a_small_batch_round_trips_through_the_inline_path() -> None:
    texts, dimensions = ["a", "b", "c"], 8
    assert len(texts) * dimensions < OFFLOAD_FLOATS
    with redis_namespace("embed-writes") as namespace:
        async with app_client(settings(namespace)) as client:
            first = await client.post(EMBEDDINGS, json=body(texts, dimensions))
            again = await client.post(EMBEDDINGS, json=body(["c", "a"], dimensions))
        stored = await stored_vectors(namespace)
    vectors = [d["embedding"] for d in first.json()["data"]]
    assert first.headers["x-aiservice-cache"] == "miss"
    assert sorted(map(tuple, stored)) == sorted(map(tuple, vectors))
    assert again.headers["x-aiservice-cache"] == "hit"
    assert [d["embedding"] for d in again.json()["data"]] == [vectors[2], vectors[0]]


def test_entries_are_the_json_of_each_vector() -> None:
    vectors = [[0.1, -2.5e-08, 3.0], [1e300, 0.0]]
    entries = _entries(vectors)
    assert [json.loads(e) for e in entries] == vectors
    assert entries[0] == b"[0.1, -2.5e-08, 3.0]"
