"""Round trips to the real Redis per LLM request: a cache miss under rate limits (request and
token limits, a daily budget) costs two, a hit one; counted at the connection. On a single
server and on a Redis Cluster alike (there one slot holds all of a request's keys)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio.connection import AbstractConnection

from aiservice import Settings, create_app
from aiservice.app import get_runtime
from aiservice.runtime import Runtime
from tests.conftest import app_client
from tests.support.upstream_openai import OpenAIUpstream

from .conftest import AUTH, CHAT, chat_body, sse_lines
from .redis_targets import RedisTarget

HANDSHAKE = (b"CLIENT", b"HELLO", b"AUTH", b"SELECT", b"PING")
LIMITS = {"requests_per_minute": 100, "tokens_per_minute": 100_000, "budget_usd_per_day": 100.0}


@pytest.fixture
async def settings(settings_for: Any, redis_target: RedisTarget) -> AsyncIterator[Settings]:
    settings: Settings = settings_for(
        cache={"backend": "redis", **redis_target.cache, "timeout_ms": 2000}, limits=LIMITS
    )
    yield settings
    await redis_target.cleanup(settings.cache.namespace)


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield get_runtime(app), client


async def settled(runtime: Runtime) -> None:
    """Wait until the answers already sent are stored (the store follows the response)."""
    assert runtime.response_cache is not None
    await runtime.response_cache.flights.settled()


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every packet the Redis clients of this process send for a command (one per round
    trip: a pipeline or a script is one packet), without a new connection's handshake."""
    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        packet = command if isinstance(command, bytes | str) else b"".join(command)
        packet = packet.encode() if isinstance(packet, str) else packet
        if not any(word in packet[:40] for word in HANDSHAKE):
            sent.append(packet[:200])
        await original(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counting)
        yield sent


async def test_a_miss_under_limits_costs_two_round_trips_and_a_hit_one(
    upstream: OpenAIUpstream,
    settings: Settings,
    redis_target: RedisTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(settings) as (runtime, client):
        with round_trips(monkeypatch) as sent:
            miss = await client.post(CHAT, json=chat_body("count me"), headers=AUTH)
            await settled(runtime)
            on_miss = len(sent)
            hit = await client.post(CHAT, json=chat_body("count me"), headers=AUTH)
            on_hit = len(sent) - on_miss
    assert miss.status_code == 200 and hit.status_code == 200
    assert (miss.headers["x-aiservice-cache"], hit.headers["x-aiservice-cache"]) == ("miss", "hit")
    assert miss.headers["x-ratelimit-remaining-requests"] == "99"
    assert hit.headers["x-ratelimit-remaining-requests"] == "98"
    assert on_miss <= 2, sent
    assert on_hit == 1, sent
    assert hit.json() == miss.json()
    # Everything the six separate calls did still happened: entry stored, lease released,
    # requests, tokens and spend counted.
    values = await redis_target.values(settings.cache.namespace)
    stored = [k for k in values if ":llm:" in k]
    assert len(stored) == 1 and not [k for k in values if ":lease:" in k]
    counters = {k.split(":")[-2]: int(v) for k, v in values.items() if ":rl:key:" in k}
    assert counters["rpm"] == 2
    assert counters["tpm"] > 0 and counters["usd"] > 0


async def test_a_streamed_miss_under_limits_costs_two_round_trips(
    upstream: OpenAIUpstream,
    settings: Settings,
    redis_target: RedisTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with served(settings) as (runtime, client):
        with round_trips(monkeypatch) as sent:
            status, chunks = await sse_lines(client, chat_body("stream me"))
            await settled(runtime)
        replay_status, replayed = await sse_lines(client, chat_body("stream me"))
    assert (status, replay_status) == ("miss", "hit")
    assert len(sent) <= 2, sent
    assert [c["choices"] for c in replayed] == [c["choices"] for c in chunks]
    values = await redis_target.values(settings.cache.namespace)
    assert any(":rl:key:" in k and ":tpm:" in k and int(v) > 0 for k, v in values.items())


async def test_a_refused_request_leaves_cache_and_lease_untouched(
    upstream: OpenAIUpstream, settings_for: Any, redis_target: RedisTarget
) -> None:
    settings: Settings = settings_for(
        cache={"backend": "redis", **redis_target.cache}, limits={"requests_per_minute": 1}
    )
    try:
        async with app_client(settings) as client:
            first = await client.post(CHAT, json=chat_body("a"), headers=AUTH)
            refused = await client.post(CHAT, json=chat_body("b"), headers=AUTH)
        assert first.status_code == 200
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        values = await redis_target.values(settings.cache.namespace)
        assert len([k for k in values if ":llm:" in k]) == 1  # only the admitted answer
        assert not [k for k in values if ":lease:" in k]
        assert upstream.calls[CHAT] == 1
    finally:
        await redis_target.cleanup(settings.cache.namespace)
