"""The ollama provider against a real local server speaking Ollama's /api wire format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiservice.config import ProviderSettings, Settings
from aiservice.providers.base import ProviderError
from aiservice.providers.ollama import OllamaProvider, from_ollama, to_ollama
from aiservice.secrets.base import SecretResolver
from tests.providers.contract import ProviderContract, ProviderHarness, provider_pair
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_ollama import OllamaUpstream

SECRET = "proxy-token-abcdef123456"


ollama_server, ollama = upstream_fixtures(OllamaUpstream, name="ollama")


def make_provider(base_url: str) -> OllamaProvider:
    config = ProviderSettings(type="ollama", base_url=base_url, api_key=SECRET, timeout=2.0)
    return OllamaProvider("ollama", config, SecretResolver(Settings()))


class TestOllamaContract(ProviderContract):
    @pytest.fixture
    async def harness(
        self, ollama: OllamaUpstream, ollama_server: tuple[OllamaUpstream, str]
    ) -> AsyncIterator[ProviderHarness]:
        async with provider_pair(make_provider, ollama_server[1]) as (provider, unreachable):
            yield ProviderHarness(
                provider=provider,
                model="llama3.2",
                embedding_model="nomic-embed-text",
                secret=SECRET,
                inject=ollama.inject,
                unreachable=unreachable,
            )


def test_to_ollama_maps_options_format_images_and_tool_calls() -> None:
    request = {
        "messages": [
            {"role": "developer", "content": "be terse"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "stop": "END",
        "seed": 7,
        "response_format": {"type": "json_object"},
    }
    body = to_ollama("llama3.2", request, stream=False)
    assert body["messages"][0] == {"role": "system", "content": "be terse"}
    assert body["messages"][1] == {"role": "user", "content": "what is this?", "images": ["AAAA"]}
    assert body["messages"][2]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert body["options"] == {"temperature": 0.2, "num_predict": 50, "seed": 7, "stop": ["END"]}
    assert body["format"] == "json" and body["stream"] is False


def test_to_ollama_passes_a_json_schema_as_format() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    body = to_ollama("m", {"messages": [], "response_format": fmt}, stream=True)
    assert body["format"] == schema


def test_remote_image_urls_are_a_client_error() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(ProviderError) as info:
        to_ollama("m", {"messages": [{"role": "user", "content": parts}]}, stream=False)
    assert info.value.status == 400 and not info.value.allows_fallback


def test_from_ollama_recorded_tool_call_answer() -> None:
    # The documented /api/chat answer for a tool call (arguments are an object).
    recorded = {
        "model": "llama3.2",
        "created_at": "2024-07-22T20:33:28.123648Z",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        "done_reason": "stop",
        "done": True,
        "prompt_eval_count": 26,
        "eval_count": 298,
    }
    result = from_ollama(recorded, "llama3.2")
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert result["usage"] == {"prompt_tokens": 26, "completion_tokens": 298, "total_tokens": 324}


def test_from_ollama_length_limit() -> None:
    recorded = {"message": {"role": "assistant", "content": "a"}, "done_reason": "length"}
    assert from_ollama(recorded, "m")["choices"][0]["finish_reason"] == "length"


async def test_pull_streams_progress_and_installs(
    ollama: OllamaUpstream, ollama_server: tuple[OllamaUpstream, str]
) -> None:
    provider = make_provider(ollama_server[1])
    statuses = [p["status"] async for p in provider.pull("qwen2.5:0.5b")]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "qwen2.5:0.5b" in await provider.list_models()
    await provider.aclose()


async def test_pull_error_line_raises(
    ollama: OllamaUpstream, ollama_server: tuple[OllamaUpstream, str]
) -> None:
    provider = make_provider(ollama_server[1])
    seen = []
    with pytest.raises(ProviderError) as info:
        async for progress in provider.pull("missing-model"):
            seen.append(progress)
    assert seen == [{"status": "pulling manifest"}]
    assert "file does not exist" in info.value.message
    await provider.aclose()
