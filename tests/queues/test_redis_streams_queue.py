"""The Redis Streams queue on its own, against the real Redis: delivery, ack, failure,
reclaim, hand-over on stop, stats and check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from aiservice.config import Settings
from aiservice.queues.base import DEAD_LETTERS, REDELIVERIES, Message
from aiservice.queues.redis_streams import RedisStreamsQueue

from .conftest import REDIS_URL

Make = Callable[..., RedisStreamsQueue]


@pytest.fixture
async def make(namespace: str) -> AsyncIterator[Make]:
    made: list[RedisStreamsQueue] = []

    def build(**options: Any) -> RedisStreamsQueue:
        streams = {"claim_after": 0.6, "block_ms": 50, "stop_grace": 0.1, **options}
        settings = Settings(
            cache={"url": REDIS_URL, "namespace": namespace},
            orchestrator={"queue": {"backend": "redis-streams", "redis_streams": streams}},
        )
        queue = RedisStreamsQueue(settings)
        made.append(queue)
        return queue

    yield build
    for queue in made:
        await queue.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _pending(queue: RedisStreamsQueue) -> int:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        info: Any = await client.xpending(queue.stream, queue.group)
        return int(info["pending"])
    finally:
        await client.aclose()


async def test_message_is_delivered_once_and_acknowledged(make: Make) -> None:
    seen: list[Message] = []

    async def handler(message: Message) -> None:
        seen.append(message)

    queues = [make(), make()]  # two consumers of one group
    for queue in queues:
        await queue.start(handler)
    await queues[0].enqueue(Message.execution("e1", "f"))
    await _until(lambda: len(seen) == 1)
    await asyncio.sleep(0.2)
    assert [m.execution_id for m in seen] == ["e1"]
    assert (await queues[0].stats()).depth == 0  # XACK + XDEL
    assert await _pending(queues[0]) == 0


async def test_failed_handler_leaves_the_entry_to_be_reclaimed(make: Make) -> None:
    calls: list[int] = []

    async def flaky(message: Message) -> None:
        calls.append(message.delivery)
        if len(calls) == 1:
            raise RuntimeError("state store down")

    queue = make()
    before = REDELIVERIES.labels("redis-streams")._value.get()
    await queue.start(flaky)
    await queue.enqueue(Message.execution("e2", "f"))
    await _until(lambda: len(calls) == 2)
    assert calls == [1, 2]
    assert REDELIVERIES.labels("redis-streams")._value.get() == before + 1
    await _until(lambda: queue._running == {})
    assert (await queue.stats()).depth == 0


async def test_an_entry_failing_every_time_goes_to_the_dead_letter_stream(make: Make) -> None:
    deliveries: list[int] = []

    async def always_failing(message: Message) -> None:
        deliveries.append(message.delivery)
        raise RuntimeError("cannot be indexed")

    queue = make(claim_after=0.15, max_deliveries=3)
    before = DEAD_LETTERS.labels("redis-streams")._value.get()
    await queue.start(always_failing)
    await queue.enqueue(Message.execution("e-poison", "f"))
    await _until(lambda: DEAD_LETTERS.labels("redis-streams")._value.get() == before + 1)
    await asyncio.sleep(0.5)  # several more reclaim passes: nothing runs it again
    assert deliveries == [1, 2, 3]  # the true count, not "2" for every redelivery
    assert (await queue.stats()).depth == 0
    assert await _pending(queue) == 0
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        dead: Any = await client.xrange(queue.dead_letter)
    finally:
        await client.aclose()
    assert len(dead) == 1
    fields = dead[0][1]
    assert Message.parse(fields[b"data"]).execution_id == "e-poison"
    assert fields[b"deliveries"] == b"3"


async def test_stop_hands_running_work_to_another_instance(make: Make) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(message: Message) -> None:
        started.set()
        await asyncio.sleep(30)

    async def quick(message: Message) -> None:
        finished.append(message.execution_id)

    # A long claim_after: only the hand-over (entries marked idle) makes this fast.
    leaving, staying = make(claim_after=3.0), make(claim_after=3.0)
    await leaving.start(slow)
    await leaving.enqueue(Message.execution("e3", "f"))
    await asyncio.wait_for(started.wait(), 5)
    await staying.start(quick)
    await leaving.stop()  # grace 0.1 s, then cancelled and handed over
    await _until(lambda: finished == ["e3"], timeout=3.0)


async def test_stats_and_check(make: Make) -> None:
    queue = make()
    assert "group workers" in await queue.check()  # creates the stream and group
    await queue.enqueue(Message.execution("e4", "f"))
    await asyncio.sleep(0.05)
    stats = await queue.stats()
    assert stats.depth == 1
    assert stats.oldest_age is not None and 0 <= stats.oldest_age < 5


async def test_departed_consumers_are_forgotten_but_not_their_work(make: Make) -> None:
    queue = make(claim_after=0.05)
    await queue.check()
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        # A consumer that left with nothing pending, and one that died holding an entry.
        await client.xgroup_createconsumer(queue.stream, queue.group, "gone-idle")
        await client.xadd(queue.stream, {b"data": Message.execution("e5", "f").body().encode()})
        await client.xreadgroup(queue.group, "died-busy", {queue.stream: ">"}, count=1)
        await asyncio.sleep(0.6)  # both idle for more than 10 x claim_after
        await queue._forget_departed()
        names = {c["name"] for c in await client.xinfo_consumers(queue.stream, queue.group)}
    finally:
        await client.aclose()
    assert b"gone-idle" not in names and "gone-idle" not in names
    assert {b"died-busy", "died-busy"} & names  # still owns its entry: kept for reclaim
