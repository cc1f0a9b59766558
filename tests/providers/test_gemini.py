"""Gemini provider on Google AI: generateContent translation (recorded payloads) and HTTP
behaviour against a real local server speaking Gemini's wire format (Vertex AI: see
test_gemini_vertex.py)."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiservice.config import ProviderSettings
from aiservice.errors import ConfigError, InvalidRequestError
from aiservice.providers.base import ProviderError
from aiservice.providers.gemini import GeminiProvider
from aiservice.providers.gemini_translate import (
    GeminiStream,
    from_generate_response,
    gemini_schema,
    to_generate_request,
)
from aiservice.secrets.base import SecretResolver
from tests.conftest import MakeSettings
from tests.providers.contract import (
    WEATHER_TOOL,
    ProviderContract,
    ProviderHarness,
    collect,
    provider_pair,
    text_of,
)
from tests.providers.fixtures.gemini_upstream import TokenEndpoint, error_body, make_echo
from tests.providers.fixtures.upstream import (
    Upstream,
    json_reply,
    load_json,
    load_text,
    sse_data,
    sse_reply,
    upstream_fixtures,
)

KEY = "AIzaSyTest-0123456789abcdefghijkl"
USER = {"role": "user", "content": "hello"}

_UPSTREAM = Upstream()
_TOKENS = TokenEndpoint()


server_url, upstream = upstream_fixtures(_UPSTREAM, make_echo(_TOKENS), error_body, _TOKENS)


def google_ai(make_settings: MakeSettings, base_url: str, **overrides: Any) -> GeminiProvider:
    settings = make_settings({}, environ={"GEMINI_API_KEY": KEY})
    config = ProviderSettings(
        type="gemini",
        base_url=base_url,
        api_key="secret://env/GEMINI_API_KEY",
        timeout=1.0,
        **overrides,
    )
    return GeminiProvider("gemini", config, SecretResolver(settings))


@pytest.fixture
async def provider(
    make_settings: MakeSettings, server_url: str, upstream: Upstream
) -> AsyncIterator[GeminiProvider]:
    gemini = google_ai(make_settings, server_url)
    yield gemini
    await gemini.aclose()


class TestGoogleAIContract(ProviderContract):
    supports_embeddings = True

    @pytest.fixture
    async def harness(
        self, make_settings: MakeSettings, server_url: str, upstream: Upstream
    ) -> AsyncIterator[ProviderHarness]:
        make = functools.partial(google_ai, make_settings)
        async with provider_pair(make, server_url) as (gemini, unreachable):
            yield ProviderHarness(
                provider=gemini,
                model="gemini-2.0-flash",
                embedding_model="text-embedding-004",
                secret=KEY,
                inject=upstream.inject,
                unreachable=unreachable,
            )


# -- request translation (pure) -------------------------------------------------------------


def test_request_maps_roles_system_and_generation_config() -> None:
    body = to_generate_request(
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "again"}]},
            ],
            "temperature": 0,
            "top_p": 0.5,
            "max_tokens": 64,
            "stop": ["END"],
            "seed": 42,
            "n": 2,
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [{"text": "again"}]
    assert body["generationConfig"] == {
        "temperature": 0,
        "topP": 0.5,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "seed": 42,
        "candidateCount": 2,
    }


def test_images_become_inline_data_or_file_data() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png?x=1"}},
    ]
    parts = to_generate_request({"messages": [{"role": "user", "content": content}]})["contents"][
        0
    ]["parts"]
    assert parts[0] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    assert parts[1] == {
        "fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png?x=1"}
    }


def test_tool_calls_and_results_become_function_call_and_response_parts() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {
            "id": "c2",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
        },
    ]
    body = to_generate_request(
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        }
    )
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn["parts"][1] == {"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}
    # Gemini keys results by function name and wants parallel results in one user turn.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}},
        ],
    }
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"]["required"] == ["city"]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")]
)
def test_tool_choice_strings_map_to_function_calling_modes(choice: str, mode: str) -> None:
    body = to_generate_request({"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": mode}


def test_tool_result_for_an_unknown_call_id_is_a_client_error() -> None:
    with pytest.raises(InvalidRequestError, match="tool_call_id"):
        to_generate_request(
            {"messages": [USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}
        )


def test_json_modes_set_mime_type_and_a_gemini_compatible_schema() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string", "additionalProperties": False}},
        },
        "required": ["name"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    config = to_generate_request({"messages": [USER], "response_format": fmt})["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "nullable": True},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name"],
    }
    plain = to_generate_request({"messages": [USER], "response_format": {"type": "json_object"}})
    assert plain["generationConfig"] == {"responseMimeType": "application/json"}


def test_schema_reduction_keeps_nested_any_of() -> None:
    schema = {"anyOf": [{"type": "string", "const": "x"}, {"type": "integer"}], "title": "T"}
    assert gemini_schema(schema) == {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "title": "T",
    }


# -- response translation (recorded payloads) -----------------------------------------------


def test_text_response_maps_to_completion() -> None:
    result = from_generate_response(load_json("gemini/generate_text.json"), "gemini-1.5-flash")
    assert result["id"] == "gQ3aZ5OCCsr2xN8PnJ7tkAs"
    assert result["model"] == "gemini-1.5-flash-001"
    choice = result["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "AI learns patterns from data to make predictions.",
    }
    assert choice["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 8, "completion_tokens": 9, "total_tokens": 17}


def test_function_call_response_maps_to_tool_calls_with_thinking_in_output_tokens() -> None:
    result = from_generate_response(load_json("gemini/generate_function_call.json"), "m")
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["function"]["name"] == "find_theaters"
    assert json.loads(call["function"]["arguments"]) == {
        "location": "Mountain View, CA",
        "movie": "Barbie",
    }
    assert result["usage"]["completion_tokens"] == 12 + 20


def test_candidates_become_choices_with_their_own_finish_reasons() -> None:
    result = from_generate_response(load_json("gemini/generate_two_candidates.json"), "m")
    assert [
        (c["index"], c["message"]["content"], c["finish_reason"]) for c in result["choices"]
    ] == [
        (0, "Heads", "stop"),
        (1, "Tails, and then some", "length"),
    ]


@pytest.mark.parametrize("fixture", ["gemini/generate_safety.json", "gemini/prompt_blocked.json"])
def test_safety_blocks_map_to_content_filter(fixture: str) -> None:
    result = from_generate_response(load_json(fixture), "m")
    assert result["choices"][0]["finish_reason"] == "content_filter"
    assert result["choices"][0]["message"]["content"] == ""
    assert result["usage"]["prompt_tokens"] > 0


def test_recorded_text_stream_yields_deltas_finish_and_usage() -> None:
    translator = GeminiStream("gemini", "m")
    chunks = [c for e in sse_data(load_text("gemini/stream_text.sse")) for c in translator.feed(e)]
    chunks += translator.finish()
    assert text_of(chunks) == "The quick brown fox."
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["id"] == "stream-1"
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


def test_recorded_parallel_function_calls_stream_as_indexed_tool_calls() -> None:
    translator = GeminiStream("gemini", "m")
    events = sse_data(load_text("gemini/stream_function_call.sse"))
    chunks = [c for e in events for c in translator.feed(e)] + translator.finish()
    deltas = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert [(d["index"], json.loads(d["function"]["arguments"])) for d in deltas] == [
        (0, {"city": "Lisbon"}),
        (1, {"city": "Porto"}),
    ]
    assert len({d["id"] for d in deltas}) == 2
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["tool_calls"]


def test_stream_without_finish_reason_is_an_error() -> None:
    translator = GeminiStream("gemini", "m")
    for event in sse_data(load_text("gemini/stream_text.sse"))[:-1]:
        translator.feed(event)
    with pytest.raises(ProviderError, match="finishReason"):
        translator.finish()


# -- Google AI over HTTP --------------------------------------------------------------------


async def test_chat_sends_key_in_header_never_in_url(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    result = await provider.chat("models/gemini-2.0-flash", {"messages": [USER]})
    assert result["choices"][0]["message"]["content"] == "echo: hello"
    sent = upstream.last
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert "key" not in sent.query and KEY not in sent.path
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


async def test_api_version_setting_changes_the_path(
    make_settings: MakeSettings, server_url: str, upstream: Upstream
) -> None:
    gemini = google_ai(make_settings, server_url, api_version="v1")
    await gemini.chat("gemini-2.0-flash", {"messages": [USER]})
    await gemini.aclose()
    assert upstream.last.path == "/v1/models/gemini-2.0-flash:generateContent"


async def test_recorded_stream_is_replayed_over_sse(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(sse_reply(load_text("gemini/stream_text.sse")))
    chunks = await collect(provider, "gemini-2.0-flash", {"messages": [USER]})
    assert upstream.last.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert upstream.last.query == {"alt": "sse"}
    assert text_of(chunks) == "The quick brown fox."
    assert chunks[-1]["usage"]["total_tokens"] == 14


async def test_error_object_mid_stream_raises_after_partial_text(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(sse_reply(load_text("gemini/stream_error.sse")))
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream_chat("gemini-2.0-flash", {"messages": [USER]}):
            received.append(chunk)
    assert text_of(received) == "Partial"
    assert info.value.status == 503 and info.value.retryable
    assert "overloaded" in info.value.message


async def test_invalid_api_key_is_an_auth_error_although_google_sends_400(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("gemini/error_api_key_invalid.json"), 400))
    with pytest.raises(ProviderError) as info:
        await provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert info.value.kind == "auth" and info.value.status == 400
    assert info.value.allows_fallback and not info.value.retryable


async def test_quota_error_takes_retry_delay_from_retry_info(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("gemini/error_quota.json"), 429))
    with pytest.raises(ProviderError) as info:
        await provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert info.value.status == 429 and info.value.retry_after == 37.0
    assert "exceeded your current quota" in info.value.message


async def test_images_tools_and_json_mode_reach_the_upstream(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    content = [
        {"type": "text", "text": "what is it"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    await provider.chat(
        "gemini-2.0-flash",
        {
            "messages": [{"role": "user", "content": content}],
            "response_format": {"type": "json_object"},
        },
    )
    sent = upstream.last.body
    assert sent["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    }
    assert sent["generationConfig"]["responseMimeType"] == "application/json"


async def test_single_input_uses_embed_content_and_many_use_batches_of_100(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    one = await provider.embed("text-embedding-004", ["solo"], dimensions=8)
    assert upstream.last.path == "/v1beta/models/text-embedding-004:embedContent"
    assert upstream.last.body["outputDimensionality"] == 8
    assert len(one.vectors) == 1 and one.input_tokens == 1
    texts = [f"text {i}" for i in range(150)]
    many = await provider.embed("text-embedding-004", texts)
    batches = [r for r in upstream.received if r.path.endswith(":batchEmbedContents")]
    assert [len(r.body["requests"]) for r in batches] == [100, 50]
    assert batches[0].body["requests"][0]["model"] == "models/text-embedding-004"
    assert len(many.vectors) == 150 and many.vectors[0] != many.vectors[1]


async def test_recorded_batch_embedding_payload_is_parsed(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("gemini/batch_embed.json")))
    result = await provider.embed("text-embedding-004", ["a", "b"])
    assert result.vectors == [[0.013168523, -0.008711934, -0.046782676], [0.021, 0.005, -0.03]]


async def test_list_models_strips_prefix_and_follows_pages(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(
        json_reply(load_json("gemini/models.json")),
        json_reply(load_json("gemini/models_page2.json")),
    )
    assert await provider.list_models() == [
        "gemini-2.0-flash",
        "text-embedding-004",
        "gemini-1.5-pro",
    ]
    assert upstream.last.query["pageToken"] == "page-2"
    assert upstream.last.headers["x-goog-api-key"] == KEY


def test_without_key_or_vertex_the_configuration_is_rejected(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        GeminiProvider("g", ProviderSettings(type="gemini"), SecretResolver(make_settings({})))


async def test_embedding_count_mismatch_is_a_protocol_error(
    provider: GeminiProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("gemini/batch_embed.json")))  # two vectors
    with pytest.raises(ProviderError) as info:
        await provider.embed("text-embedding-004", ["a", "b", "c"])
    assert info.value.kind == "protocol" and "2 embeddings for 3 inputs" in info.value.message
