"""Bedrock provider: Converse translation (recorded payloads) and boto3 behaviour against a
real local server speaking the Bedrock runtime protocol, event-stream framing included."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiservice.config import ProviderSettings, Settings
from aiservice.errors import InvalidRequestError
from aiservice.providers.base import ProviderError
from aiservice.providers.bedrock import BedrockProvider
from aiservice.providers.bedrock_translate import (
    ConverseStream,
    error_for_code,
    from_converse_response,
    to_converse_request,
)
from aiservice.secrets.base import SecretResolver
from tests.providers.contract import (
    WEATHER_TOOL,
    ProviderContract,
    ProviderHarness,
    collect,
    provider_pair,
    text_of,
)
from tests.providers.fixtures.bedrock_upstream import (
    REQUEST_ID,
    echo,
    error_body,
    eventstream_reply,
)
from tests.providers.fixtures.upstream import (
    Upstream,
    gateway_config,
    json_reply,
    load_json,
    openai_sdk,
    sdk_chat_then_stream,
    sdk_stream_text,
    upstream_fixtures,
)

ACCESS_KEY = "AKIDAISERVICETEST"
SECRET_KEY = "bedrock-test-secret-0123456789abcdef"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
USER = {"role": "user", "content": "hello"}
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()

_UPSTREAM = Upstream()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static test credentials; no profile, config file or instance metadata is consulted."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "missing-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


server_url, upstream = upstream_fixtures(_UPSTREAM, echo, error_body)


def make_provider(base_url: str, **overrides: Any) -> BedrockProvider:
    options: dict[str, Any] = {"region": "us-east-1", "timeout": 1.0, **overrides}
    config = ProviderSettings(type="bedrock", base_url=base_url, **options)
    return BedrockProvider("bedrock", config, SecretResolver(Settings()))


@pytest.fixture
async def provider(server_url: str, upstream: Upstream) -> AsyncIterator[BedrockProvider]:
    bedrock = make_provider(server_url)
    yield bedrock
    await bedrock.aclose()


class TestBedrockContract(ProviderContract):
    supports_embeddings = True

    @pytest.fixture
    async def harness(self, server_url: str, upstream: Upstream) -> AsyncIterator[ProviderHarness]:
        async with provider_pair(make_provider, server_url) as (bedrock, unreachable):
            yield ProviderHarness(
                provider=bedrock,
                model=MODEL,
                embedding_model="amazon.titan-embed-text-v2:0",
                secret=SECRET_KEY,
                inject=upstream.inject,
                unreachable=unreachable,
            )


# -- request translation (pure) -------------------------------------------------------------


def test_request_maps_system_inference_config_and_images() -> None:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    kwargs = to_converse_request(
        MODEL,
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": content},
            ],
            "max_tokens": 50,
            "temperature": 0.3,
            "top_p": 0.8,
            "stop": ["END"],
            "seed": 1,
        },
    )
    assert kwargs["modelId"] == MODEL
    assert kwargs["system"] == [{"text": "Be terse."}]
    assert kwargs["inferenceConfig"] == {
        "maxTokens": 50,
        "temperature": 0.3,
        "topP": 0.8,
        "stopSequences": ["END"],
    }
    image = kwargs["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x1a\nfake"}}


@pytest.mark.parametrize(
    ("url", "match"),
    [("https://example.com/cat.png", "data: URLs"), ("data:image/tiff;base64,AAAA", "image/tiff")],
)
def test_images_bedrock_cannot_take_are_client_errors(url: str, match: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(InvalidRequestError, match=match):
        to_converse_request(MODEL, {"messages": [{"role": "user", "content": content}]})


def test_tool_calls_results_and_tool_config_translate() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
    }
    kwargs = to_converse_request(
        MODEL,
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
        },
    )
    assert kwargs["messages"][1] == {
        "role": "assistant",
        "content": [
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Lisbon"}}}
        ],
    }
    assert kwargs["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}}
    ]
    spec = kwargs["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "get_weather"
    assert spec["inputSchema"] == {"json": WEATHER_TOOL["function"]["parameters"]}
    assert kwargs["toolConfig"]["toolChoice"] == {"any": {}}


def test_named_tool_choice_and_none_without_tool_history() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    kwargs = to_converse_request(
        MODEL, {"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": named}
    )
    assert kwargs["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    none = to_converse_request(
        MODEL, {"messages": [USER], "tools": [WEATHER_TOOL], "tool_choice": "none"}
    )
    assert "toolConfig" not in none  # Converse has no "none": the tools are left out


def test_json_mode_becomes_a_system_instruction_and_n_is_rejected() -> None:
    kwargs = to_converse_request(
        MODEL, {"messages": [USER], "response_format": {"type": "json_object"}}
    )
    assert "JSON object" in kwargs["system"][0]["text"]
    with pytest.raises(InvalidRequestError):
        to_converse_request(MODEL, {"messages": [USER], "n": 3})


# -- response translation (recorded payloads) -----------------------------------------------


def test_text_response_maps_to_completion() -> None:
    result = from_converse_response(load_json("bedrock/converse_text.json"), MODEL)
    assert result["choices"][0]["message"]["content"] == "Here is a short poem about the sea."
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 30, "completion_tokens": 628, "total_tokens": 658}


def test_tool_use_response_maps_to_tool_calls_and_counts_cache_reads() -> None:
    result = from_converse_response(load_json("bedrock/converse_tool_use.json"), MODEL)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'},
        }
    ]
    assert result["usage"]["prompt_tokens"] == 375 + 25


def test_recorded_stream_events_assemble_text_tool_call_and_usage() -> None:
    translator = ConverseStream("bedrock", MODEL)
    events = load_json("bedrock/converse_stream_tool.json")
    chunks = [c for e in events for c in translator.feed(e)] + translator.finish()
    assert text_of(chunks) == "Let me check the weather."
    deltas = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert deltas[0] == {
        "index": 0,
        "id": "tooluse_abc123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"city": "Lisbon"}
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 412,
        "completion_tokens": 57,
        "total_tokens": 469,
    }


def test_stream_without_message_stop_is_an_error() -> None:
    translator = ConverseStream("bedrock", MODEL)
    for event in load_json("bedrock/converse_stream_tool.json")[:5]:
        translator.feed(event)
    with pytest.raises(ProviderError, match="messageStop"):
        translator.finish()


@pytest.mark.parametrize(
    ("code", "status", "kind", "retryable"),
    [
        ("ThrottlingException", 429, "http", True),
        ("ValidationException", 400, "http", False),
        ("AccessDeniedException", 403, "auth", False),
        ("ModelTimeoutException", 504, "timeout", True),
        ("ServiceUnavailableException", 503, "http", True),
        ("modelStreamErrorException", 502, "http", True),  # stream exceptions are lower-case
    ],
)
def test_bedrock_error_codes_map_to_status_and_retryability(
    code: str, status: int, kind: str, retryable: bool
) -> None:
    error = error_for_code(code, "details", "bedrock")
    assert (error.status, error.kind, error.retryable) == (status, kind, retryable)
    assert code in error.message and "details" in error.message


# -- boto3 against the local server ---------------------------------------------------------


async def test_converse_is_signed_for_the_region_and_sends_the_translated_body(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    result = await provider.chat(
        MODEL, {"messages": [{"role": "system", "content": "sys"}, USER], "max_tokens": 9}
    )
    assert result["choices"][0]["message"]["content"] == "echo: hello"
    assert result["id"] == f"chatcmpl-{REQUEST_ID}"  # the AWS request id, for support cases
    sent = upstream.last
    assert sent.path == f"/model/{MODEL}/converse"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.body["system"] == [{"text": "sys"}]
    assert sent.body["inferenceConfig"] == {"maxTokens": 9}
    assert result["usage"]["prompt_tokens"] > 0


async def test_image_bytes_travel_base64_encoded(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    content = [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]
    await provider.chat(MODEL, {"messages": [{"role": "user", "content": content}]})
    image = upstream.last.body["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": PNG_B64}}


async def test_recorded_tool_use_response_is_parsed(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    upstream.replay(json_reply(load_json("bedrock/converse_tool_use.json")))
    result = await provider.chat(MODEL, {"messages": [USER], "tools": [WEATHER_TOOL]})
    assert result["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "top_song"
    assert upstream.last.body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


async def test_recorded_event_stream_is_decoded_by_boto3_into_chunks(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    upstream.replay(lambda: eventstream_reply(load_json("bedrock/converse_stream_tool.json")))
    chunks = await collect(provider, MODEL, {"messages": [USER], "tools": [WEATHER_TOOL]})
    assert upstream.last.path == f"/model/{MODEL}/converse-stream"
    assert {c["id"] for c in chunks} == {f"chatcmpl-{REQUEST_ID}"}
    assert text_of(chunks) == "Let me check the weather."
    deltas = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"city": "Lisbon"}
    assert chunks[-1]["usage"]["total_tokens"] == 469


async def test_exception_event_mid_stream_raises_after_partial_text(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    upstream.replay(lambda: eventstream_reply(load_json("bedrock/converse_stream_error.json")))
    received = []
    with pytest.raises(ProviderError) as info:
        async for chunk in provider.stream_chat(MODEL, {"messages": [USER]}):
            received.append(chunk)
    assert text_of(received) == "Partial"
    assert info.value.status == 429 and info.value.retryable
    assert "Too many tokens" in info.value.message


@pytest.mark.parametrize(
    ("status", "code", "kind", "expected"),
    [
        (403, "AccessDeniedException", "auth", 403),
        (408, "ModelTimeoutException", "timeout", 504),
        (424, "ModelErrorException", "http", 502),
    ],
)
async def test_http_errors_map_by_bedrock_error_code(
    provider: BedrockProvider, upstream: Upstream, status: int, code: str, kind: str, expected: int
) -> None:
    headers = {"x-amzn-errortype": f"{code}:http://internal.amazon.com/"}
    upstream.replay(json_reply({"message": "nope"}, status, headers))
    with pytest.raises(ProviderError) as info:
        await provider.chat(MODEL, {"messages": [USER]})
    assert (info.value.kind, info.value.status) == (kind, expected)
    assert code in info.value.message


async def test_titan_embeddings_invoke_once_per_input_with_dimensions(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    result = await provider.embed(
        "amazon.titan-embed-text-v2:0", ["one two", "three"], dimensions=256
    )
    invokes = sorted(upstream.received, key=lambda r: r.body["inputText"])
    assert [r.body for r in invokes] == [
        {"inputText": "one two", "dimensions": 256},
        {"inputText": "three", "dimensions": 256},
    ]
    assert invokes[0].path == "/model/amazon.titan-embed-text-v2:0/invoke"
    assert result.input_tokens == 3  # from x-amzn-bedrock-input-token-count
    assert len(result.vectors) == 2 and result.vectors[0] != result.vectors[1]


async def test_cohere_embeddings_batch_96_texts_per_call(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    texts = [f"doc {i}" for i in range(100)]
    result = await provider.embed("cohere.embed-english-v3", texts)
    assert [len(r.body["texts"]) for r in upstream.received] == [96, 4]
    assert upstream.received[0].body["input_type"] == "search_document"
    assert len(result.vectors) == 100 and result.input_tokens == 200


async def test_other_embedding_models_are_a_client_error(provider: BedrockProvider) -> None:
    with pytest.raises(InvalidRequestError, match="titan-embed"):
        await provider.embed("meta.llama3-8b-instruct-v1:0", ["x"])


async def test_list_models_returns_foundation_model_ids(
    provider: BedrockProvider, upstream: Upstream
) -> None:
    assert await provider.list_models() == [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.titan-embed-text-v2:0",
    ]
    assert upstream.last.path == "/foundation-models"


async def test_configured_headers_are_sent(server_url: str, upstream: Upstream) -> None:
    bedrock = make_provider(server_url, headers={"x-team": "search"})
    await bedrock.chat(MODEL, {"messages": [USER]})
    await bedrock.aclose()
    assert upstream.last.headers["x-team"] == "search"


async def test_missing_region_is_a_clear_auth_error(server_url: str) -> None:
    bedrock = make_provider(server_url, region=None)
    with pytest.raises(ProviderError) as info:
        await bedrock.chat(MODEL, {"messages": [USER]})
    await bedrock.aclose()
    assert info.value.kind == "auth" and "region" in info.value.message.lower()


def test_importing_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys, aiservice.providers.bedrock\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- through the OpenAI-compatible API (official SDK) ----------------------------------------


async def test_sdk_chat_stream_and_embeddings_reach_bedrock(
    make_settings: Any, client_for: Any, server_url: str, upstream: Upstream
) -> None:
    provider = {"type": "bedrock", "base_url": server_url, "region": "eu-west-1"}
    config = gateway_config(provider, MODEL, e="amazon.titan-embed-text-v2:0")
    async with openai_sdk(client_for, make_settings(config)) as sdk:
        completion, sent, chunks = await sdk_chat_then_stream(sdk, upstream, USER)
        embeddings = await sdk.embeddings.create(model="e", input=["alpha", "beta"])
    assert completion.choices[0].message.content == "echo: hello"
    assert sent.path == f"/model/{MODEL}/converse"
    assert "/eu-west-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sdk_stream_text(chunks).strip() == "echo: hello"
    assert chunks[-1].usage.total_tokens > 0
    assert len(embeddings.data) == 2 and embeddings.usage.prompt_tokens == 2
