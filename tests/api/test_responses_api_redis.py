"""Stored responses on a real Redis (127.0.0.1:6379): two instances share them (one
creates, the other reads and continues), keys carry the prefix and the configured TTL;
with Redis unreachable a response is still answered (``store: false``) and continuing
from one is a 503."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import redis.asyncio as aioredis

from aiservice import Settings
from tests.conftest import app_client
from tests.support.servers import free_port

REDIS = "redis://127.0.0.1:6379/0"
KEY = "client-key-redis-0001"


def settings_for(url: str, namespace: str) -> Settings:
    return Settings(
        auth={"api_keys": [KEY]},
        cache={"backend": "redis", "url": url, "namespace": namespace, "timeout_ms": 500},
        responses={"ttl": 120, "prefix": "resp-test"},
    )


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    name = f"aiservice-responses-{uuid.uuid4().hex[:10]}"
    yield name
    client = aioredis.Redis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(match=f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def sdk(http: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
    )


async def test_two_instances_share_stored_responses(namespace: str) -> None:
    settings = settings_for(REDIS, namespace)
    async with app_client(settings) as one, app_client(settings) as two:
        created = await sdk(one).responses.create(model="fake", input="hello")
        fetched = await sdk(two).responses.retrieve(created.id)
        continued = await sdk(two).responses.create(
            model="fake", input="again", previous_response_id=created.id
        )
    assert fetched.output_text == "hello" and continued.output_text == "again"
    client = aioredis.Redis.from_url(REDIS)
    keys = [k.decode() async for k in client.scan_iter(match=f"{namespace}:resp-test:*")]
    ttl = await client.ttl(f"{namespace}:resp-test:" + keys[0].split(":", 2)[2])
    await client.aclose()
    assert len(keys) == 2 and any(k.endswith(created.id) for k in keys)
    assert 100 < ttl <= 120


async def test_an_unreachable_state_backend_answers_unstored() -> None:
    settings = settings_for(f"redis://127.0.0.1:{free_port()}/0", "unreachable")
    async with app_client(settings) as http:
        created = await sdk(http).responses.create(model="fake", input="hello")
        with pytest.raises(openai.InternalServerError) as info:
            await sdk(http).responses.create(
                model="fake", input="again", previous_response_id=created.id
            )
    assert created.output_text == "hello" and created.store is False
    assert info.value.status_code == 503
