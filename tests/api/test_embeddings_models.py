"""/v1/embeddings and /v1/models through the official openai SDK, in-process."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice import Settings
from aiservice.providers.fake import embedding
from tests.support.llm_servers import ENVIRON, SdkFactory, Upstreams, llm_config


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


async def test_embeddings_float_and_base64_agree(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        floats = await sdk.embeddings.create(
            model="fake", input=["alpha", "beta"], dimensions=16, encoding_format="float"
        )
        decoded = await sdk.embeddings.create(model="fake", input=["alpha", "beta"], dimensions=16)
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.data[0].embedding == pytest.approx(embedding("alpha", 16))
    for a, b in zip(floats.data, decoded.data, strict=True):
        assert b.embedding == pytest.approx(a.embedding, abs=1e-6)  # float32 on the wire
    assert floats.usage.prompt_tokens == 2 and floats.model == "fake"


async def test_embeddings_of_a_single_string_via_openai_upstream(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.embeddings.with_raw_response.create(
            model="embed", input="one two three", dimensions=4, encoding_format="float"
        )
    result = raw.parse()
    assert len(result.data) == 1 and len(result.data[0].embedding) == 4
    assert result.usage.prompt_tokens == 3
    assert raw.headers["x-aiservice-provider"] == "primary"
    assert upstreams.primary.requests[-1].body["input"] == ["one two three"]


async def test_embeddings_are_batched(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = {**llm_config(upstreams), "embeddings": {"batch_size": 2, "concurrency": 2}}
    inputs = [f"text {i}" for i in range(5)]
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        result = await sdk.embeddings.create(model="embed", input=inputs, encoding_format="float")
    assert upstreams.primary.calls["/v1/embeddings"] == 3
    sizes = sorted(len(r.body["input"]) for r in upstreams.primary.requests)
    assert sizes == [1, 2, 2]
    # order is kept across batches
    from tests.support.upstream_openai import vector

    assert [d.embedding for d in result.data] == [vector(t, 8) for t in inputs]


async def test_token_array_input_is_a_clear_400(settings: Settings, sdk_for: SdkFactory) -> None:
    import openai

    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.embeddings.create(model="fake", input=[[1, 2, 3]])
    assert info.value.param == "input"


async def test_models_list_and_retrieve(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        listed = await sdk.models.list()
        one = await sdk.models.retrieve("chat")
        direct = await sdk.models.retrieve("local/llama3.2")
    assert sorted((m.id, m.owned_by) for m in listed.data) == [
        ("chat", "primary"),
        ("embed", "primary"),
        ("fake", "offline"),
        ("solo", "primary"),
    ]
    assert one.id == "chat" and one.object == "model"
    assert direct.id == "local/llama3.2" and direct.owned_by == "local"


async def test_large_embeddings_encoded_off_the_loop_match_the_small_path(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    from aiservice.llm.render import THREAD_VALUES

    texts = [f"text {i}" for i in range(20)]
    dimensions = 4096
    assert len(texts) * dimensions > THREAD_VALUES  # the worker-thread path
    async with sdk_for(settings) as (sdk, _):
        floats = await sdk.embeddings.create(
            model="fake", input=texts, dimensions=dimensions, encoding_format="float"
        )
        decoded = await sdk.embeddings.create(model="fake", input=texts, dimensions=dimensions)
    assert [d.index for d in floats.data] == list(range(20))
    assert floats.data[7].embedding == embedding("text 7", dimensions)
    assert decoded.data[7].embedding == pytest.approx(floats.data[7].embedding, abs=1e-6)


async def test_a_non_finite_vector_value_is_a_502_not_a_500() -> None:
    from aiservice.errors import UpstreamError
    from aiservice.llm.render import embeddings_body

    for as_base64 in (False, True):
        with pytest.raises(UpstreamError) as info:
            await embeddings_body(
                [[0.1, float("nan") if not as_base64 else 1e300]],
                as_base64=as_base64,
                model="m",
                usage={"prompt_tokens": 1, "total_tokens": 1},
            )
        assert info.value.status_code == 502
