"""The Redis backend against the real server on 127.0.0.1:6379, in a namespace per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError

from aiservice.cache.redis import RedisBackend
from aiservice.config import Settings

from .contract import Advance, MakeBackend, StateBackendContract
from .redis_server import redis_process

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _cleanup(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def run_prefix() -> AsyncIterator[str]:
    prefix = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    await _cleanup(prefix)


class TestRedisContract(StateBackendContract):
    ttl = 0.3  # real clock: keep expiry tests short

    @pytest.fixture
    async def make_backend(self, run_prefix: str) -> AsyncIterator[MakeBackend]:
        made: list[RedisBackend] = []

        def make(namespace: str) -> RedisBackend:
            settings = Settings(cache={"url": REDIS_URL, "namespace": f"{run_prefix}-{namespace}"})
            made.append(RedisBackend(settings))
            return made[-1]

        yield make
        for backend in made:
            await backend.aclose()

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep


def _settings_with_refs(url: str, password: str) -> Settings:
    from aiservice.config import load_settings

    return load_settings(
        environ={
            "AISERVICE_CACHE__URL": "secret://env/REDIS_URL",
            "AISERVICE_CACHE__PASSWORD": "secret://env/REDIS_PASSWORD",
            "REDIS_URL": url,
            "REDIS_PASSWORD": password,
        },
        dotenv_file=None,
        cwd="/nonexistent",
    )


async def test_url_and_password_come_from_secret_references() -> None:
    from aiservice.secrets.base import SecretResolver

    with redis_process("--requirepass", "s3cret-pw") as server:
        good = _settings_with_refs(server.url, "s3cret-pw")
        backend = RedisBackend(good, SecretResolver(good))
        await backend.set("k", b"v", ttl=60)
        assert await backend.get("k") == b"v"
        await backend.aclose()

        bad = _settings_with_refs(server.url, "wrong")
        backend = RedisBackend(bad, SecretResolver(bad))
        with pytest.raises(AuthenticationError):
            await backend.ping()
        await backend.aclose()


async def test_keys_carry_the_namespace_prefix(run_prefix: str) -> None:
    backend = RedisBackend(Settings(cache={"url": REDIS_URL, "namespace": run_prefix}))
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await backend.set("k", b"v", ttl=60)
        assert await client.get(f"{run_prefix}:k") == b"v"
        assert 0 < await client.pttl(f"{run_prefix}:k") <= 60_000
    finally:
        await backend.aclose()
        await client.aclose()
