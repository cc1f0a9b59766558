"""The provider side of the Messages API route, against loopback servers: an Anthropic
provider sends a client's Messages body natively (chat and stream) and counts tokens
upstream; a Gemini provider counts a chat request with ``:countTokens`` (Google AI and
Vertex AI)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from aiservice.config import ProviderSettings, VertexSettings
from aiservice.providers.anthropic import AnthropicProvider
from aiservice.providers.anthropic_native import NATIVE_EVENTS, MessagesNative, MessagesRequest
from aiservice.providers.base import ProviderError
from aiservice.providers.counting import CountsChatTokens
from aiservice.providers.gemini import GeminiProvider
from aiservice.secrets.base import SecretResolver
from tests.conftest import MakeSettings
from tests.providers.fixtures import anthropic_upstream, gemini_upstream
from tests.providers.fixtures.upstream import Upstream, json_reply, upstream_app
from tests.support.servers import serve_app

CLIENT_BODY = {
    "model": "public-name",
    "max_tokens": 20,
    "top_k": 3,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "stream": False,
}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


@pytest.fixture(scope="module")
def claude_server() -> Iterator[tuple[Upstream, str]]:
    upstream = Upstream()
    app = upstream_app(upstream, anthropic_upstream.echo, anthropic_upstream.error_body)
    with serve_app(app) as url:
        yield upstream, url


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[tuple[Upstream, str, dict[str, str]]]:
    upstream, tokens = Upstream(), gemini_upstream.TokenEndpoint()
    app = upstream_app(upstream, gemini_upstream.make_echo(tokens), gemini_upstream.error_body)
    with serve_app(app) as url:
        yield upstream, url, gemini_upstream.service_account_info("p", f"{url}/token")


@pytest.fixture
def claude(make_settings: MakeSettings, claude_server: tuple[Upstream, str]) -> Any:
    upstream, url = claude_server
    upstream.reset()
    config = ProviderSettings(type="anthropic", base_url=url, api_key="sk-ant-0123456789")
    return AnthropicProvider("claude", config, SecretResolver(make_settings({}))), upstream


async def test_an_anthropic_provider_sends_the_native_body(claude: Any) -> None:
    provider, upstream = claude
    request = MessagesRequest(CHAT, CLIENT_BODY)
    try:
        completion = await provider.chat("claude-up", request)
        sent = upstream.last.body
        chunks = [chunk async for chunk in provider.stream_chat("claude-up", request)]
        streamed = upstream.last.body
    finally:
        await provider.aclose()
    assert isinstance(provider, MessagesNative)
    expected = {k: v for k, v in CLIENT_BODY.items() if k != "stream"}
    assert sent == {**expected, "model": "claude-up"}
    assert streamed == {**expected, "model": "claude-up", "stream": True}
    assert completion["choices"][0]["message"]["content"] == "echo: hi"
    events = [e["type"] for c in chunks for e in c.get(NATIVE_EVENTS, [])]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_an_anthropic_provider_counts_tokens_upstream(claude: Any) -> None:
    provider, upstream = claude
    upstream.replay(json_reply({"input_tokens": 12}), json_reply({"tokens": 3}))
    body = {"messages": CLIENT_BODY["messages"], "system": "s"}
    try:
        tokens = await provider.count_message_tokens("claude-up", body)
        with pytest.raises(ProviderError) as caught:
            await provider.count_message_tokens("claude-up", body)
    finally:
        await provider.aclose()
    assert tokens == 12
    first = upstream.received[0]
    assert (first.path, first.body) == ("/v1/messages/count_tokens", {**body, "model": "claude-up"})
    assert first.headers["x-api-key"] == "sk-ant-0123456789"
    assert caught.value.kind == "protocol"


async def test_gemini_counts_chat_tokens_on_google_ai_and_vertex(
    make_settings: MakeSettings, gemini_server: tuple[Upstream, str, dict[str, str]]
) -> None:
    upstream, url, account = gemini_server
    upstream.reset()
    secrets = SecretResolver(make_settings({}))
    google = GeminiProvider(
        "g", ProviderSettings(type="gemini", base_url=url, api_key="AIzaSy-0123456789"), secrets
    )
    vertex_config = ProviderSettings(
        type="gemini", base_url=url, vertex=VertexSettings(project="p", location="us-central1")
    )
    credentials = gemini_upstream.credentials_from(account)
    vertex = GeminiProvider("v", vertex_config, secrets, credentials=credentials)
    request = {**CHAT, "messages": [{"role": "system", "content": "s"}, *CHAT["messages"]]}
    try:
        await vertex.list_models()  # fetches the access token now: the replies below are counts
        upstream.received.clear()
        upstream.replay(json_reply({"totalTokens": 5}), json_reply({"totalTokens": 6}))
        counts = (
            await google.count_chat_tokens("gemini-2.0-flash", request),
            await vertex.count_chat_tokens("gemini-2.0-flash", request),
        )
    finally:
        await google.aclose()
        await vertex.aclose()
    assert isinstance(google, CountsChatTokens)
    assert counts == (5, 6)
    google_ai, on_vertex = (r for r in upstream.received if r.path != "/token")
    assert google_ai.path.endswith("/models/gemini-2.0-flash:countTokens")
    generate = google_ai.body["generateContentRequest"]
    assert generate["model"] == "models/gemini-2.0-flash"
    assert generate["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert generate["systemInstruction"] == {"parts": [{"text": "s"}]}
    assert on_vertex.path.endswith(
        "/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:countTokens"
    )
    assert set(on_vertex.body) == {"contents", "systemInstruction"}
    assert on_vertex.headers["authorization"].startswith("Bearer ya29.local-token-")
