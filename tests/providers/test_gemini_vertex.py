"""Gemini provider on Vertex AI: project-scoped URLs, OAuth bearer tokens from google-auth
(service-account credentials whose token endpoint is local, injected or found through
application default credentials), token reuse and refresh, :predict embeddings, and the
same models reached through the OpenAI-compatible API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiservice.config import ProviderSettings, VertexSettings
from aiservice.providers.base import ProviderError
from aiservice.providers.gemini import GeminiProvider
from aiservice.providers.gemini_auth import CLOUD_PLATFORM_SCOPE, VertexTarget
from aiservice.secrets.base import SecretResolver
from tests.conftest import MakeSettings
from tests.providers.contract import (
    ProviderContract,
    ProviderHarness,
    collect,
    provider_pair,
    text_of,
)
from tests.providers.fixtures.gemini_upstream import (
    TokenEndpoint,
    credentials_from,
    error_body,
    make_echo,
    service_account_info,
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

KEY = "AIzaSyTest-vertex-module-0123456789"
PROJECT = "test-project"
USER = {"role": "user", "content": "hello"}

_UPSTREAM = Upstream()
_TOKENS = TokenEndpoint()


server_url, upstream = upstream_fixtures(_UPSTREAM, make_echo(_TOKENS), error_body, _TOKENS)


@pytest.fixture(scope="module")
def service_account(server_url: str) -> dict[str, str]:
    """A service-account key whose token_uri is the local token endpoint."""
    return service_account_info(PROJECT, f"{server_url}/token")


@pytest.fixture
def application_default_credentials(
    service_account: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Application default credentials: the service-account key as a file named by
    ``GOOGLE_APPLICATION_CREDENTIALS``, the way google-auth finds it on a workstation."""
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(service_account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))


def vertex(
    make_settings: MakeSettings, base_url: str, credentials: Any = None, **vertex_kw: Any
) -> GeminiProvider:
    config = ProviderSettings(
        type="gemini",
        base_url=base_url,
        vertex=VertexSettings(project=PROJECT, **vertex_kw),
        timeout=1.0,
    )
    return GeminiProvider(
        "vertex", config, SecretResolver(make_settings({})), credentials=credentials
    )


@pytest.fixture
async def vertex_provider(
    make_settings: MakeSettings,
    server_url: str,
    upstream: Upstream,
    service_account: dict[str, str],
) -> AsyncIterator[GeminiProvider]:
    gemini = vertex(make_settings, server_url, credentials_from(service_account))
    yield gemini
    await gemini.aclose()


class TestVertexContract(ProviderContract):
    supports_embeddings = True

    @pytest.fixture
    async def harness(
        self,
        make_settings: MakeSettings,
        server_url: str,
        upstream: Upstream,
        service_account: dict[str, str],
    ) -> AsyncIterator[ProviderHarness]:
        def make(url: str) -> GeminiProvider:
            return vertex(make_settings, url, credentials_from(service_account))

        async with provider_pair(make, server_url) as (gemini, dead):
            # Fetch the token first so the contract can check it never leaks in errors.
            token = await gemini._target.credentials.token()
            yield ProviderHarness(
                provider=gemini,
                model="gemini-2.0-flash",
                embedding_model="text-embedding-005",
                secret=token,
                inject=upstream.inject,
                unreachable=dead,
            )


# -- Vertex AI over HTTP --------------------------------------------------------------------


async def test_vertex_chat_uses_project_path_and_bearer_token(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    result = await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert result["choices"][0]["message"]["content"] == "echo: hello"
    token_request, call = upstream.received
    assert token_request.path == "/token"
    assert _TOKENS.claims[0]["scope"] == CLOUD_PLATFORM_SCOPE
    assert call.path == (
        f"/v1/projects/{PROJECT}/locations/us-central1/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    assert call.headers["authorization"] == "Bearer ya29.local-token-1"
    assert "x-goog-api-key" not in call.headers


async def test_vertex_token_is_reused_while_valid(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert _TOKENS.issued == ["ya29.local-token-1"]
    assert upstream.last.headers["authorization"] == "Bearer ya29.local-token-1"


async def test_vertex_token_is_refreshed_once_expired(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    _TOKENS.expires_in = 60  # inside google-auth's refresh margin: stale at once
    await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert _TOKENS.issued == ["ya29.local-token-1", "ya29.local-token-2"]
    assert upstream.last.headers["authorization"] == "Bearer ya29.local-token-2"


async def test_vertex_uses_application_default_credentials(
    make_settings: MakeSettings,
    server_url: str,
    upstream: Upstream,
    application_default_credentials: None,
) -> None:
    gemini = vertex(make_settings, server_url)  # no credentials given: ADC
    chunks = await collect(gemini, "gemini-2.0-flash", {"messages": [USER]})
    await gemini.aclose()
    assert "echo: hello" in text_of(chunks)
    assert upstream.last.headers["authorization"] == "Bearer ya29.local-token-1"
    assert upstream.last.path.endswith("gemini-2.0-flash:streamGenerateContent")


async def test_vertex_token_failure_is_an_auth_error(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    denied = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    upstream.replay(json_reply(denied, 400))
    with pytest.raises(ProviderError) as info:
        await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})
    assert info.value.kind == "auth" and info.value.allows_fallback
    assert "access token" in info.value.message


async def test_vertex_embeddings_use_predict_and_report_token_counts(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    result = await vertex_provider.embed("text-embedding-005", ["one two", "three"], dimensions=3)
    sent = upstream.last
    assert sent.path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert sent.body == {
        "instances": [{"content": "one two"}, {"content": "three"}],
        "parameters": {"outputDimensionality": 3},
    }
    assert result.input_tokens == 2 + 1 and len(result.vectors) == 2
    upstream.replay(json_reply(load_json("gemini/vertex_predict.json")))
    recorded = await vertex_provider.embed("text-embedding-005", ["a", "b"])
    assert recorded.input_tokens == 10 and recorded.vectors[1] == [0.017, -0.006, 0.004]


async def test_vertex_list_models_uses_model_garden_with_quota_project(
    vertex_provider: GeminiProvider, upstream: Upstream
) -> None:
    await vertex_provider.chat("gemini-2.0-flash", {"messages": [USER]})  # token now cached
    upstream.replay(json_reply(load_json("gemini/vertex_publisher_models.json")))
    assert await vertex_provider.list_models() == ["gemini-2.0-flash-001"]
    listing = upstream.last
    assert listing.path == "/v1beta1/publishers/google/models"
    assert listing.headers["x-goog-user-project"] == PROJECT


def test_vertex_hosts_follow_the_location() -> None:
    regional = VertexTarget(
        "v",
        VertexSettings(project="p", location="europe-west4"),
        ProviderSettings(type="gemini"),
        None,
    )
    assert regional.base_url == "https://europe-west4-aiplatform.googleapis.com"
    global_ = VertexTarget(
        "v", VertexSettings(project="p", location="global"), ProviderSettings(type="gemini"), None
    )
    assert global_.base_url == "https://aiplatform.googleapis.com"


# -- through the OpenAI-compatible API (official SDK) ----------------------------------------


async def test_sdk_reaches_google_ai_and_vertex_through_the_api(
    make_settings: MakeSettings,
    client_for: Any,
    server_url: str,
    upstream: Upstream,
    application_default_credentials: None,
) -> None:
    """The official SDK against the app: Google AI chat, stream and embeddings, and Vertex
    AI chat authenticated with application default credentials (a key file)."""
    google = {"type": "gemini", "base_url": server_url, "api_key": "secret://env/GK"}
    config = gateway_config(google, "gemini-2.0-flash", e="text-embedding-004")
    config["providers"]["v"] = {
        "type": "gemini",
        "base_url": server_url,
        "vertex": {"project": PROJECT},
    }
    config["models"]["vm"] = [{"provider": "v", "model": "gemini-2.0-flash"}]
    async with openai_sdk(client_for, make_settings(config, {"GK": KEY})) as sdk:
        completion, sent, chunks = await sdk_chat_then_stream(sdk, upstream, USER)
        embeddings = await sdk.embeddings.create(model="e", input=["alpha", "beta"])
        on_vertex = await sdk.chat.completions.create(model="vm", messages=[USER])
    assert completion.choices[0].message.content == "echo: hello"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sdk_stream_text(chunks).strip() == "echo: hello"
    assert chunks[-1].usage.total_tokens > 0
    assert len(embeddings.data) == 2
    assert embeddings.data[0].embedding != embeddings.data[1].embedding
    assert on_vertex.choices[0].message.content == "echo: hello"
    assert upstream.last.headers["authorization"] == "Bearer ya29.local-token-1"
    assert upstream.last.path.startswith(f"/v1/projects/{PROJECT}/locations/us-central1/")
