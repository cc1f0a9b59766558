"""The Anthropic and Gemini credentials as :class:`~aiservice.transport.auth.HeaderAuth`
implementations: each one's headers reach a real loopback upstream through the providers'
upstream client, a credential that cannot be obtained is an ``auth`` error, and what an
upstream echoes back of a credential is scrubbed from the error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from google.oauth2.credentials import Credentials

from aiservice.providers.anthropic import anthropic_key
from aiservice.providers.base import ProviderError
from aiservice.providers.gemini_auth import VertexCredentials, google_api_key
from aiservice.providers.upstream import UpstreamClient
from aiservice.secrets.base import SecretResolver
from aiservice.transport.auth import HeaderAuth

from ..conftest import MakeSettings
from ..support.servers import serve_app

ENV = {"ANTHROPIC_KEY": "sk-ant-header-0123456789", "GOOGLE_KEY": "AIzaSy-header-0123456789"}
TOKEN = "ya29.header-auth-token-0123"

_seen: list[dict[str, str]] = []
Send = Callable[..., Awaitable[dict[str, str]]]


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/ok")
    async def ok(request: Request) -> JSONResponse:
        _seen.append({k.lower(): v for k, v in request.headers.items()})
        return JSONResponse({"ok": True})

    @app.post("/echo-denied")
    async def denied(request: Request) -> JSONResponse:
        # What some upstreams do: quote the credential they refused.
        sent = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
        credential = sent.removeprefix("Bearer ")
        return JSONResponse({"error": {"message": f"invalid credential {credential}"}}, 401)

    return app


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_app(_app()) as url:
        yield url


@pytest.fixture
async def send(server_url: str) -> AsyncIterator[Send]:
    clients: list[UpstreamClient] = []

    async def call(auth: HeaderAuth, path: str = "/ok") -> dict[str, str]:
        client = UpstreamClient("p", server_url, timeout=5, auth=auth)
        clients.append(client)
        _seen.clear()
        await client.json("POST", path, headers={"x-extra": "1"}, body={"q": 1})
        return _seen[-1]

    yield call
    for client in clients:
        await client.aclose()


def _secrets(make_settings: MakeSettings) -> SecretResolver:
    return SecretResolver(make_settings({}, ENV))


async def test_anthropic_key_reaches_the_upstream_as_x_api_key(
    make_settings: MakeSettings, send: Send
) -> None:
    auth = anthropic_key(_secrets(make_settings), "secret://env/ANTHROPIC_KEY")
    seen = await send(auth)
    assert seen["x-api-key"] == ENV["ANTHROPIC_KEY"]
    assert "authorization" not in seen and seen["x-extra"] == "1"


async def test_google_api_key_reaches_the_upstream_as_x_goog_api_key(
    make_settings: MakeSettings, send: Send
) -> None:
    auth = google_api_key(_secrets(make_settings), "secret://env/GOOGLE_KEY")
    seen = await send(auth)
    assert seen["x-goog-api-key"] == ENV["GOOGLE_KEY"]
    assert "authorization" not in seen


async def test_vertex_credentials_reach_the_upstream_as_a_bearer_token(send: Send) -> None:
    auth = VertexCredentials("vertex", Credentials(token=TOKEN))
    seen = await send(auth)
    assert seen["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in seen


async def test_an_unresolvable_key_is_an_auth_error_before_anything_is_sent(
    make_settings: MakeSettings, send: Send
) -> None:
    auth = anthropic_key(_secrets(make_settings), "secret://env/NOT_SET_ANYWHERE")
    _seen.clear()
    with pytest.raises(ProviderError) as info:
        await send(auth)
    assert info.value.kind == "auth" and info.value.provider == "p"
    assert _seen == []


@pytest.mark.parametrize("which", ["vertex", "anthropic"])
async def test_an_echoed_credential_is_scrubbed_from_the_error(
    make_settings: MakeSettings, send: Send, which: str
) -> None:
    auth: HeaderAuth
    if which == "vertex":
        auth, credential = VertexCredentials("vertex", Credentials(token=TOKEN)), TOKEN
    else:
        credential = ENV["ANTHROPIC_KEY"]
        auth = anthropic_key(_secrets(make_settings), "secret://env/ANTHROPIC_KEY")
    with pytest.raises(ProviderError) as info:
        await send(auth, "/echo-denied")
    assert info.value.kind == "auth"
    assert "invalid credential" in info.value.message
    assert credential not in info.value.message
