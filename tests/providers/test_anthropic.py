"""Anthropic provider: Messages API translation (recorded payloads) and HTTP behaviour
against a real local server that speaks the Messages wire format."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiservice.config import ProviderSettings, Settings
from aiservice.errors import ConfigError, InvalidRequestError
from aiservice.providers.anthropic import AnthropicProvider
from aiservice.providers.anthropic_translate import (
    DEFAULT_MAX_TOKENS,
    AnthropicStream,
    from_messages_response,
    to_messages_request,
)
from aiservice.providers.base import ProviderError
from aiservice.secrets.base import SecretResolver
from tests.conftest import MakeSettings
from tests.providers.contract import (
    WEATHER_TOOL,
    Failure,
    ProviderContract,
    ProviderHarness,
    collect,
    provider_pair,
    text_of,
)
from tests.providers.fixtures.anthropic_upstream import echo, error_body
from tests.providers.fixtures.upstream import (
    Upstream,
    gateway_config,
    json_reply,
    load_json,
    load_text,
    openai_sdk,
    sdk_chat_then_stream,
    sdk_stream_text,
    sse_data,
    sse_reply,
    upstream_fixtures,
)

KEY = "sk-ant-test-0123456789abcdef"
USER = {"role": "user", "content": "hello"}
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


_UPSTREAM = Upstream()


server_url, upstream = upstream_fixtures(_UPSTREAM, echo, error_body)


def make_provider(
    make_settings: MakeSettings, base_url: str, **overrides: Any
) -> AnthropicProvider:
    settings = make_settings({}, environ={"ANTHROPIC_API_KEY": KEY})
    config = ProviderSettings(
        type="anthropic",
        base_url=base_url,
        api_key="secret://env/ANTHROPIC_API_KEY",
        timeout=1.0,
        **overrides,
    )
    return AnthropicProvider("claude", config, SecretResolver(settings))


@pytest.fixture
async def provider(
    make_settings: MakeSettings, server_url: str, upstream: Upstream
) -> AsyncIterator[AnthropicProvider]:
    claude = make_provider(make_settings, server_url)
    yield claude
    await claude.aclose()


class TestAnthropicContract(ProviderContract):
    supports_embeddings = False
    supports_failures = True
    supports_stream_drop = True

    @pytest.fixture
    async def harness(
        self, make_settings: MakeSettings, server_url: str, upstream: Upstream
    ) -> AsyncIterator[ProviderHarness]:
        make = functools.partial(make_provider, make_settings)
        async with provider_pair(make, server_url) as (claude, unreachable):
            yield ProviderHarness(
                provider=claude,
                model="claude-3-5-haiku-latest",
                secret=KEY,
                inject=upstream.inject,
                unreachable=unreachable,
            )


# -- request translation (pure) -------------------------------------------------------------


def test_request_moves_system_to_top_level_and_defaults_max_tokens() -> None:
    body = to_messages_request(
        "claude-3-5-haiku-latest",
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "developer", "content": "No emojis."},
                {"role": "user", "content": "hi"},
            ],
            "stop": "END",
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "seed": 7,
        },
    )
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "No emojis."},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["stop_sequences"] == ["END"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["metadata"] == {"user_id": "u-1"}
    assert "seed" not in body  # no Anthropic equivalent


def test_max_completion_tokens_wins_over_the_default() -> None:
    body = to_messages_request(
        "m", {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 123}
    )
    assert body["max_tokens"] == 123


def test_images_become_base64_and_url_sources() -> None:
    content = [
        {"type": "text", "text": "compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = to_messages_request("m", {"messages": [{"role": "user", "content": content}]})
    blocks = body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


def test_tool_calls_and_results_round_trip_as_tool_use_blocks() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'},
        },
    ]
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "rain"}]},
    ]
    body = to_messages_request(
        "m",
        {
            "messages": messages,
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
    )
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant["content"][1] == {
        "type": "tool_use",
        "id": "call_a",
        "name": "get_weather",
        "input": {"city": "Lisbon"},
    }
    # Both results share one user turn: Anthropic requires alternating roles.
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_b", "content": "rain"},
        ],
    }
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_maps_to_anthropic_forms(choice: Any, expected: dict[str, Any]) -> None:
    body = to_messages_request(
        "m",
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": choice,
        },
    )
    assert body["tool_choice"] == expected


def test_json_schema_mode_adds_a_system_instruction_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    body = to_messages_request(
        "m",
        {
            "messages": [
                {"role": "system", "content": "You add."},
                {"role": "user", "content": "2+2"},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema},
            },
        },
    )
    assert body["system"][0]["text"] == "You add."
    assert "JSON" in body["system"][1]["text"]
    assert json.dumps(schema, separators=(",", ":"), sort_keys=True) in body["system"][1]["text"]


def test_requests_anthropic_cannot_serve_are_client_errors() -> None:
    with pytest.raises(InvalidRequestError) as info:
        to_messages_request("m", {"messages": [{"role": "user", "content": "x"}], "n": 2})
    assert info.value.param == "n" and info.value.status_code == 400
    bad_image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]
    with pytest.raises(InvalidRequestError):
        to_messages_request("m", {"messages": [{"role": "user", "content": bad_image}]})


# -- response translation (recorded payloads) -----------------------------------------------


def test_text_response_maps_to_completion() -> None:
    result = from_messages_response(load_json("anthropic/message_text.json"))
    assert result["id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert result["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hi! My name is Claude.",
    }
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {
        "prompt_tokens": 2095,
        "completion_tokens": 503,
        "total_tokens": 2598,
    }


def test_tool_use_response_maps_to_tool_calls_and_counts_cached_input() -> None:
    result = from_messages_response(load_json("anthropic/message_tool_use.json"))
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert json.loads(call["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    # input_tokens excludes cache reads/writes; OpenAI's prompt_tokens includes them.
    assert result["usage"]["prompt_tokens"] == 384 + 100 + 200
    assert result["usage"]["prompt_tokens_details"] == {"cached_tokens": 200}


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_stop_reasons_map_to_openai_finish_reasons(reason: str, finish: str) -> None:
    body = {**load_json("anthropic/message_text.json"), "stop_reason": reason}
    assert from_messages_response(body)["choices"][0]["finish_reason"] == finish


def test_recorded_tool_stream_assembles_text_arguments_and_usage() -> None:
    translator = AnthropicStream("claude", "m")
    chunks = [
        c for e in sse_data(load_text("anthropic/stream_tool_use.sse")) for c in translator.feed(e)
    ]
    translator.finish()
    assert text_of(chunks) == "Okay, let's check the weather for San Francisco, CA:"
    calls = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and calls[0]["index"] == 0
    arguments = "".join(d["function"].get("arguments", "") for d in calls)
    assert json.loads(arguments) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 472,
        "completion_tokens": 89,
        "total_tokens": 561,
    }
    assert chunks[0]["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"


def test_stream_without_message_stop_is_an_error() -> None:
    translator = AnthropicStream("claude", "m")
    for event in sse_data(load_text("anthropic/stream_text.sse"))[:-1]:
        translator.feed(event)
    with pytest.raises(ProviderError, match="before message_stop"):
        translator.finish()


# -- HTTP against the local server ----------------------------------------------------------


async def test_chat_sends_key_version_and_translated_body(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    result = await provider.chat(
        "claude-3-5-haiku-latest",
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}]},
    )
    assert result["choices"][0]["message"]["content"] == "echo: hello"
    sent = upstream.last
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY  # resolved from secret://env/ANTHROPIC_API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == [{"type": "text", "text": "sys"}]
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS and "stream" not in sent.body


async def test_api_version_setting_changes_the_header(
    make_settings: MakeSettings, server_url: str, upstream: Upstream
) -> None:
    claude = make_provider(make_settings, server_url, api_version="2099-01-01")
    await claude.chat("m", {"messages": [{"role": "user", "content": "x"}]})
    await claude.aclose()
    assert upstream.last.headers["anthropic-version"] == "2099-01-01"


async def test_recorded_text_stream_is_replayed_as_chunks(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.replay(sse_reply(load_text("anthropic/stream_text.sse")))
    chunks = await collect(provider, "m", {"messages": [{"role": "user", "content": "hi"}]})
    assert upstream.last.body["stream"] is True
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "Hello!"
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}


async def test_error_event_mid_stream_raises_retryable_error_after_partial_text(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.replay(sse_reply(load_text("anthropic/stream_error.sse")))
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream_chat(
            "m", {"messages": [{"role": "user", "content": "hi"}]}
        ):
            received.append(chunk)
    assert text_of(received) == "Hel"
    assert info.value.status == 529 and info.value.retryable
    assert "Overloaded" in info.value.message


async def test_overloaded_529_is_retryable(provider: AnthropicProvider, upstream: Upstream) -> None:
    upstream.replay(json_reply(load_json("anthropic/error_overloaded.json"), 529))
    with pytest.raises(ProviderError) as info:
        await provider.chat("m", {"messages": [{"role": "user", "content": "hi"}]})
    assert info.value.status == 529 and info.value.retryable and info.value.kind == "http"


async def test_invalid_request_400_carries_anthropic_message(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("anthropic/error_invalid_request.json"), 400))
    with pytest.raises(ProviderError) as info:
        await provider.chat("m", {"messages": [{"role": "user", "content": "hi"}]})
    assert info.value.status == 400 and not info.value.allows_fallback
    assert "roles must alternate" in info.value.message


async def test_images_and_json_mode_reach_the_upstream_translated(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    await provider.chat(
        "m",
        {
            "messages": [{"role": "user", "content": content}],
            "response_format": {"type": "json_object"},
        },
    )
    sent = upstream.last.body
    assert sent["messages"][0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": PNG,
    }
    assert "JSON object" in sent["system"][0]["text"]


async def test_streamed_tool_call_sends_tools_and_assembles_arguments(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    chunks = await collect(
        provider,
        "m",
        {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER_TOOL]},
    )
    assert upstream.last.body["tools"][0]["name"] == "get_weather"
    deltas = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert deltas[0]["id"] == "toolu_echo" and deltas[0]["function"]["name"] == "get_weather"
    arguments = "".join(d["function"]["arguments"] for d in deltas)
    assert json.loads(arguments) == {"city": "value of city"}


async def test_list_models_follows_pagination(
    provider: AnthropicProvider, upstream: Upstream
) -> None:
    upstream.replay(
        json_reply(load_json("anthropic/models_page1.json")),
        json_reply(load_json("anthropic/models_page2.json")),
    )
    assert await provider.list_models() == [
        "claude-3-5-sonnet-20241022",
        "claude-3-5-haiku-20241022",
    ]
    assert upstream.received[-1].query["after_id"] == "claude-3-5-sonnet-20241022"
    assert upstream.received[-1].headers["x-api-key"] == KEY


async def test_embeddings_are_a_clear_client_error(provider: AnthropicProvider) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await provider.embed("claude-3-5-haiku-latest", ["x"])
    assert info.value.status_code == 400 and info.value.code == "unsupported"
    assert "does not support embeddings" in info.value.message


def test_missing_api_key_is_a_configuration_error(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        AnthropicProvider(
            "claude", ProviderSettings(type="anthropic"), SecretResolver(make_settings({}))
        )


# -- through the OpenAI-compatible API (official SDK) ----------------------------------------


@pytest.fixture
def gateway(make_settings: MakeSettings, server_url: str, upstream: Upstream) -> Settings:
    provider = {"type": "anthropic", "base_url": server_url, "api_key": "secret://env/AK"}
    return make_settings(gateway_config(provider, "claude-3-5-haiku-latest"), {"AK": KEY})


async def test_sdk_chat_stream_tools_and_failures_through_anthropic(
    gateway: Settings, client_for: Any, upstream: Upstream
) -> None:
    """The official SDK against the app: chat, stream with usage, tools, a mid-stream
    error event, a rejected key (502 without the key) and an embedding request (400). One
    app for all: app startup dominates the cost of these tests."""
    import openai

    async with openai_sdk(client_for, gateway) as sdk:
        completion, sent, chunks = await sdk_chat_then_stream(sdk, upstream, USER)
        tool_reply = await sdk.chat.completions.create(
            model="m", messages=[USER], tools=[WEATHER_TOOL]
        )
        upstream.replay(sse_reply(load_text("anthropic/stream_error.sse")))
        broken = await sdk.chat.completions.create(model="m", messages=[USER], stream=True)
        with pytest.raises(openai.APIError) as stream_info:
            async for _ in broken:
                pass
        stream_error = stream_info.value
        upstream.inject(Failure(status=401, message=f"invalid x-api-key {KEY}"))
        with pytest.raises(openai.APIStatusError) as status_info:
            await sdk.chat.completions.create(model="m", messages=[USER])
        rejected = status_info.value
        upstream.inject(None)
        with pytest.raises(openai.BadRequestError) as embed_info:
            await sdk.embeddings.create(model="m", input=["x"])
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.usage.prompt_tokens > 0
    assert sent.headers["x-api-key"] == KEY
    assert sent.body["model"] == "claude-3-5-haiku-latest"
    assert sdk_stream_text(chunks).strip() == "echo: hello"
    assert chunks[-1].usage.completion_tokens > 0
    assert tool_reply.choices[0].finish_reason == "tool_calls"
    call = tool_reply.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "value of city"}
    # Failures: an error event mid-stream and a rejected key.
    assert isinstance(stream_error, openai.APIError) and "Overloaded" in str(stream_error)
    assert rejected.status_code == 502 and KEY not in str(rejected.body)
    assert "does not support embeddings" in embed_info.value.message


async def test_literal_api_key_is_masked_in_logs(
    make_settings: MakeSettings, server_url: str, upstream: Upstream, json_logs: Any
) -> None:
    import logging

    config = ProviderSettings(type="anthropic", base_url=server_url, api_key="sk-ant-literal-9876")
    claude = AnthropicProvider("claude", config, SecretResolver(make_settings({})))
    await claude.chat("m", {"messages": [USER]})
    await claude.aclose()
    assert upstream.last.headers["x-api-key"] == "sk-ant-literal-9876"
    logging.getLogger("aiservice.test").warning("upstream said: bad key sk-ant-literal-9876")
    assert "sk-ant-literal-9876" not in json_logs.lines[-1]
    assert "[REDACTED]" in json_logs.lines[-1]
