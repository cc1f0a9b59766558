"""Instances sharing one Redis (a single server or a cluster) share cache, lease and limits;
a Redis outage fails open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiservice import Settings
from tests.conftest import app_client
from tests.providers.contract import Failure
from tests.support.upstream_openai import OpenAIUpstream

from .conftest import AUTH, CHAT, chat_body, sse_lines
from .redis_server import RedisProcess, redis_process
from .redis_targets import RedisTarget


@pytest.fixture
async def shared_settings(settings_for: Any, redis_target: RedisTarget) -> AsyncIterator[Settings]:
    settings: Settings = settings_for(
        cache={"backend": "redis", **redis_target.cache, "timeout_ms": 500},
        limits={"requests_per_minute": 3},
    )
    yield settings
    await redis_target.cleanup(settings.cache.namespace)


async def test_two_instances_share_the_cache(
    upstream: OpenAIUpstream, shared_settings: Settings
) -> None:
    async with app_client(shared_settings) as first, app_client(shared_settings) as second:
        miss = await first.post(CHAT, json=chat_body(), headers=AUTH)
        hit = await second.post(CHAT, json=chat_body(), headers=AUTH)
    assert (miss.headers["x-aiservice-cache"], hit.headers["x-aiservice-cache"]) == ("miss", "hit")
    assert hit.json() == miss.json()
    assert upstream.calls[CHAT] == 1


async def test_second_instance_waits_on_the_lease_instead_of_calling_upstream(
    upstream: OpenAIUpstream, shared_settings: Settings
) -> None:
    upstream.inject(Failure(kind="slow"), times=1)  # the owner's call takes 2.5 s
    async with app_client(shared_settings) as first, app_client(shared_settings) as second:

        async def later() -> Any:
            await asyncio.sleep(0.5)  # the first instance holds the lease by now
            return await second.post(CHAT, json=chat_body(), headers=AUTH)

        owner, waiter = await asyncio.gather(
            first.post(CHAT, json=chat_body(), headers=AUTH), later()
        )
    assert owner.headers["x-aiservice-cache"] == "miss"
    assert waiter.headers["x-aiservice-cache"] == "coalesced"
    assert waiter.json() == owner.json()
    assert upstream.calls[CHAT] == 1


async def test_two_instances_share_the_rate_limit(
    upstream: OpenAIUpstream, shared_settings: Settings
) -> None:
    async with app_client(shared_settings) as first, app_client(shared_settings) as second:
        codes = []
        for client in (first, second, first, second):
            response = await client.post(CHAT, json=chat_body(), headers=AUTH)
            codes.append(response.status_code)
    assert codes == [200, 200, 200, 429]


async def _wait_until_hit(client: Any, body: dict[str, Any]) -> str:
    deadline = time.monotonic() + 5
    while True:
        status = (await client.post(CHAT, json=body, headers=AUTH)).headers["x-aiservice-cache"]
        if status == "hit" or time.monotonic() > deadline:
            return str(status)
        await asyncio.sleep(0.2)


async def test_redis_stopped_mid_test_requests_still_succeed(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    with redis_process() as server:
        settings = settings_for(cache={"backend": "redis", "url": server.url, "timeout_ms": 300})
        async with app_client(settings) as client:
            body = chat_body("outage")
            first = await client.post(CHAT, json=body, headers=AUTH)
            cached = await client.post(CHAT, json=body, headers=AUTH)
            server.stop()  # Redis goes away while the app keeps serving
            started = time.monotonic()
            during = [await client.post(CHAT, json=body, headers=AUTH) for _ in range(3)]
            status, chunks = await sse_lines(client, body)
            elapsed = time.monotonic() - started
            ready = await client.get("/health/ready")
            restarted = RedisProcess(server.port)
            restarted.start()
            try:
                await asyncio.sleep(1.1)  # the fail-open cooldown
                recovered = await _wait_until_hit(client, body)
            finally:
                restarted.stop()
    assert [first.headers["x-aiservice-cache"], cached.headers["x-aiservice-cache"]] == [
        "miss",
        "hit",
    ]
    assert all(r.status_code == 200 for r in during)
    assert all(r.json()["choices"] == first.json()["choices"] for r in during)
    assert status == "miss" and chunks
    assert elapsed < 3.0  # bypassed, not waited on
    assert ready.status_code == 200
    assert ready.json()["checks"]["cache"]["status"] == "fail"
    assert recovered == "hit"
