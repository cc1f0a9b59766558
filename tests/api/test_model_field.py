"""The ``model`` field is the public name the client asked for (docs/gateway.md).

Whichever deployment answers (the primary, a fallback, a cache hit) and whatever the
upstream calls its model, the client sees the name it sent; the deployment that answered
is in the ``x-aiservice-provider`` / ``x-aiservice-model`` headers.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiservice import Settings
from tests.support.llm_servers import ENVIRON, SdkFactory, Upstreams, llm_config
from tests.support.upstream_openai import Failure

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    config = {**llm_config(upstreams), "cache": {"mode": "deterministic"}}
    settings: Settings = make_settings(config, ENVIRON)
    return settings


@pytest.mark.parametrize(
    ("model", "deployment"), [("chat", "gpt-test"), ("local/llama3.2", "llama3.2")]
)
async def test_chat_answers_with_the_requested_name(
    settings: Settings, sdk_for: SdkFactory, model: str, deployment: str
) -> None:
    async with sdk_for(settings) as (sdk, _):
        for _ in range(2):  # the second is served from the response cache
            raw = await sdk.chat.completions.with_raw_response.create(
                model=model, messages=USER, temperature=0
            )
            assert raw.parse().model == model
            assert raw.headers["x-aiservice-model"] == deployment
        assert raw.headers["x-aiservice-cache"] == "hit"


async def test_fallback_still_answers_with_the_requested_name(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=500))
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
        stream = await sdk.chat.completions.create(
            model="chat", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert raw.headers["x-aiservice-model"] == "gpt-backup"
    assert raw.parse().model == "chat"
    assert len(chunks) > 2 and {c.model for c in chunks} == {"chat"}
    assert chunks[-1].usage is not None  # the usage chunk is renamed too


async def test_stream_chunks_carry_the_requested_name(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, _):
        stream = await sdk.chat.completions.create(model="solo", messages=USER, stream=True)
        models = {chunk.model async for chunk in stream}
    assert models == {"solo"}


async def test_embeddings_answer_with_the_requested_name(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
        direct = await sdk.embeddings.create(model="primary/embed-test", input="a")
    assert raw.parse().model == "embed" and raw.headers["x-aiservice-model"] == "embed-test"
    assert direct.model == "primary/embed-test"
