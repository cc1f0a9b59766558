"""/v1/chat/completions through the official openai SDK, in-process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiservice import Settings
from tests.support.llm_servers import ENVIRON, PRIMARY_KEY, SdkFactory, Upstreams, llm_config

USER = [{"role": "user", "content": "hello there"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


async def test_default_config_answers_model_fake_offline(
    make_settings: Any, sdk_for: SdkFactory
) -> None:
    async with sdk_for(make_settings({})) as (sdk, _):
        raw = await sdk.chat.completions.with_raw_response.create(model="fake", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello there"
    assert completion.usage is not None and completion.usage.total_tokens == 4
    assert raw.headers["x-aiservice-provider"] == "fake"
    assert raw.headers["x-aiservice-model"] == "fake"


async def test_chat_reaches_the_primary_with_the_resolved_key(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.chat.completions.with_raw_response.create(
            model="chat", messages=USER, temperature=0.3, seed=7, user="u-1"
        )
    assert raw.parse().choices[0].message.content == "echo: hello there"
    assert raw.headers["x-aiservice-provider"] == "primary"
    assert raw.headers["x-aiservice-model"] == "gpt-test"
    seen = upstreams.primary.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {PRIMARY_KEY}"
    assert seen.body["model"] == "gpt-test"
    assert (seen.body["temperature"], seen.body["seed"], seen.body["user"]) == (0.3, 7, "u-1")


async def test_direct_provider_slash_model_name(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.chat.completions.with_raw_response.create(
            model="local/llama3.2", messages=USER
        )
    assert raw.parse().choices[0].message.content == "echo: hello there"
    assert raw.headers["x-aiservice-provider"] == "local"
    assert upstreams.ollama.requests[-1].body["model"] == "llama3.2"


async def test_stream_with_usage(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        stream = await sdk.chat.completions.create(
            model="chat", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_stream_without_include_usage_has_no_usage_chunk(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, http):
        stream = await sdk.chat.completions.create(model="fake", messages=USER, stream=True)
        chunks = [chunk async for chunk in stream]
        raw = await http.post(
            "/v1/chat/completions",
            json={"model": "fake", "messages": USER, "stream": True},
            headers={"authorization": "Bearer client-key-00000001"},
        )
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hello there"
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")
    assert raw.headers["x-aiservice-provider"] == "offline"


@pytest.mark.parametrize("model", ["fake", "chat"])
async def test_tool_calls(settings: Settings, sdk_for: SdkFactory, model: str) -> None:
    async with sdk_for(settings) as (sdk, _):
        completion = await sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Lisbon"}],
            tools=[WEATHER],  # type: ignore[list-item]
        )
        stream = await sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Lisbon"}],
            tools=[WEATHER],  # type: ignore[list-item]
            stream=True,
        )
        chunks = [c async for c in stream]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}  # type: ignore[union-attr]
    streamed = "".join(
        d.function.arguments or ""
        for c in chunks
        for d in (c.choices[0].delta.tool_calls or [])
        if d.function
    )
    assert json.loads(streamed) == {"city": "Lisbon"}


async def test_tool_result_round_trip_with_fake(settings: Settings, sdk_for: SdkFactory) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "Lisbon"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    async with sdk_for(settings) as (sdk, _):
        completion = await sdk.chat.completions.create(
            model="fake",
            messages=messages,
            tools=[WEATHER],  # type: ignore[list-item]
        )
    assert completion.choices[0].message.content == "tool result: sunny"


async def test_json_modes(settings: Settings, sdk_for: SdkFactory) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["answer", "confidence"],
    }
    async with sdk_for(settings) as (sdk, _):
        obj = await sdk.chat.completions.create(
            model="fake", messages=USER, response_format={"type": "json_object"}
        )
        structured = await sdk.chat.completions.create(
            model="fake",
            messages=USER,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema, "strict": True},
            },
        )
    assert json.loads(obj.choices[0].message.content or "") == {"reply": "hello there"}
    parsed = json.loads(structured.choices[0].message.content or "")
    assert parsed == {"answer": "hello there", "confidence": 2.0}


async def test_image_parts_reach_ollama_as_images(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    content = [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    async with sdk_for(settings) as (sdk, _):
        completion = await sdk.chat.completions.create(
            model="local/llava",
            messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
            max_tokens=20,
        )
    assert completion.choices[0].message.content == "echo: what is it"
    sent = upstreams.ollama.requests[-1].body
    assert sent["messages"][0]["images"] == ["iVBORw0KGgo="]
    assert sent["options"] == {"num_predict": 20}


async def test_unknown_fields_pass_through_to_openai_compatible_upstreams(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        await sdk.chat.completions.create(
            model="solo", messages=USER, extra_body={"reasoning_effort": "low"}
        )
    assert upstreams.primary.requests[-1].body["reasoning_effort"] == "low"


async def test_a_request_over_a_limit_is_a_bad_request_in_the_sdk(
    make_settings: Any, sdk_for: SdkFactory
) -> None:
    import openai

    settings = make_settings({"limits": {"requests": {"max_n": 2, "max_tokens": 50}}})
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as many:
            await sdk.chat.completions.create(model="fake", messages=USER, n=3)
        with pytest.raises(openai.BadRequestError) as long:
            await sdk.chat.completions.create(
                model="fake", messages=USER, max_tokens=51, stream=True
            )
        ok = await sdk.chat.completions.create(model="fake", messages=USER, n=2, max_tokens=50)
    assert many.value.param == "n" and "limits.requests.max_n" in many.value.message
    assert long.value.param == "max_tokens"
    assert len(ok.choices) == 2


@pytest.mark.parametrize(("max_json_depth", "code"), [(64, "json_too_deep"), (100, "invalid_text")])
async def test_a_body_nested_past_64_levels_is_refused_whatever_the_json_depth_limit(
    make_settings: Any, sdk_for: SdkFactory, max_json_depth: int, code: str
) -> None:
    # Within 64 levels the strict parse vouches for the text and the gateway skips its
    # own walk; a deeper limit lets the walk run again, so nothing deeper gets through.
    import openai

    deep: Any = "leaf"
    for _ in range(70):
        deep = {"a": deep}
    settings = make_settings({"limits": {"max_json_depth": max_json_depth}})
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(
                model="fake", messages=USER, extra_body={"metadata": deep}
            )
    assert info.value.code == code


async def test_a_big_completion_serialised_off_the_loop_is_intact(
    make_settings: Any, sdk_for: SdkFactory
) -> None:
    from aiservice.llm.render import THREAD_CHARS

    text = "ünïcode " * 20_000  # 160 k characters × 3 choices > THREAD_CHARS
    assert 3 * len(text.strip()) > THREAD_CHARS
    async with sdk_for(make_settings({})) as (sdk, _):
        completion = await sdk.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": text}], n=3
        )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == text for c in completion.choices)
    assert completion.model == "fake" and completion.usage is not None
