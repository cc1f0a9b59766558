"""An OpenAI-compatible upstream served on loopback, and app settings pointing at it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aiservice import Settings
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_openai import OpenAIUpstream

from .redis_cluster import RedisCluster, redis_cluster
from .redis_targets import SINGLE, RedisTarget, cluster_target

CLIENT_KEY = "cache-test-key-0001"
CHAT = "/v1/chat/completions"
EMBED = "/v1/embeddings"
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}


upstream_server, upstream = upstream_fixtures(OpenAIUpstream, scope="session")

CLUSTER_PASSWORD = "cluster-test-pw"


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisCluster]:
    """Three cluster-mode ``redis-server`` processes, started once for the session."""
    with redis_cluster(CLUSTER_PASSWORD) as cluster:
        yield cluster


@pytest.fixture(params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest) -> RedisTarget:
    """Each Redis-backed test runs on the shared server and on the private cluster."""
    if request.param == "single":
        return SINGLE
    return cluster_target(request.getfixturevalue("redis_cluster_server"))


def app_settings(url: str, **sections: Any) -> Settings:
    """One provider ``up`` (OpenAI-compatible) behind models ``chat`` and ``embed``."""
    cache = {"mode": "on", "namespace": f"aiservice-test-{uuid.uuid4().hex[:10]}"}
    config: dict[str, Any] = {
        "providers": {
            "up": {
                "type": "openai",
                "base_url": url + "/v1",
                "api_key": "sk-upstream",
                "timeout": 10,
                "max_retries": 0,
            }
        },
        "models": {
            "chat": [{"provider": "up", "model": "gpt-test"}],
            "embed": [{"provider": "up", "model": "embed-test"}],
        },
        "auth": {"api_keys": [CLIENT_KEY]},
        "pricing": {"gpt-test": {"input": 1000.0, "output": 1000.0}},
    }
    for name, value in sections.items():
        config[name] = {**cache, **value} if name == "cache" else value
    config.setdefault("cache", cache)
    return Settings(**config)


@pytest.fixture
def settings_for(upstream_server: tuple[OpenAIUpstream, str]) -> Any:
    return lambda **sections: app_settings(upstream_server[1], **sections)


def chat_body(text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


TOOLS = [
    {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
    }
]


async def sse_lines(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> Any:
    """(status header, [data payloads]) of one streamed request."""
    async with client.stream(
        "POST", CHAT, json={**body, "stream": True}, headers={**AUTH, **headers}
    ) as response:
        assert response.status_code == 200, await response.aread()
        lines = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return response.headers["x-aiservice-cache"], [json.loads(x) for x in lines[:-1]]
