"""Loopback upstreams in three wire formats and the official ``anthropic`` SDK bound to a
gateway in front of them, for the Anthropic Messages API tests.

Import the fixtures into a test module (or a conftest) to use them:
``messages_upstreams`` serves an Anthropic Messages API echo and a Gemini echo
(tests/providers/fixtures) for the session; the OpenAI-compatible ones come from
:mod:`tests.support.llm_servers` (``upstreams``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from anthropic import AsyncAnthropic

from aiservice import Settings, create_app
from tests.providers.fixtures import anthropic_upstream, gemini_upstream
from tests.providers.fixtures.upstream import Upstream, upstream_app
from tests.support.llm_servers import CLIENT_KEY, ENVIRON, Upstreams, llm_config
from tests.support.servers import serve_app

ANTHROPIC_KEY = "sk-ant-loopback-0123456789"
GEMINI_KEY = "AIzaSy-loopback-0123456789abcdef"


@dataclass
class MessagesUpstreams:
    anthropic: Upstream
    anthropic_url: str
    gemini: Upstream
    gemini_url: str

    def reset(self) -> None:
        self.anthropic.reset()
        self.gemini.reset()


@pytest.fixture(scope="session")
def messages_servers() -> Iterator[MessagesUpstreams]:
    claude, gemini = Upstream(), Upstream()
    claude_app = upstream_app(claude, anthropic_upstream.echo, anthropic_upstream.error_body)
    tokens = gemini_upstream.TokenEndpoint()
    gemini_app = upstream_app(gemini, gemini_upstream.make_echo(tokens), gemini_upstream.error_body)
    with serve_app(claude_app) as claude_url, serve_app(gemini_app) as gemini_url:
        yield MessagesUpstreams(claude, claude_url, gemini, gemini_url)


@pytest.fixture
def messages_upstreams(messages_servers: MessagesUpstreams) -> Iterator[MessagesUpstreams]:
    messages_servers.reset()
    yield messages_servers
    messages_servers.reset()


def messages_config(u: Upstreams, m: MessagesUpstreams, **sections: Any) -> dict[str, Any]:
    """:func:`llm_config` (``fake``, ``chat`` = primary then backup, ``solo``...) plus
    public models ``openai`` (the OpenAI-compatible primary), ``claude`` (Anthropic
    Messages API), ``gemini`` (Gemini) and ``claude-or-openai`` (Anthropic, then OpenAI)."""
    config = llm_config(u)
    fast = {"max_retries": 0, "timeout": 5.0}
    config["providers"]["claude"] = {
        "type": "anthropic",
        "base_url": m.anthropic_url,
        "api_key": ANTHROPIC_KEY,
        **fast,
    }
    config["providers"]["gem"] = {
        "type": "gemini",
        "base_url": m.gemini_url,
        "api_key": GEMINI_KEY,
        **fast,
    }
    config["models"].update(
        {
            "openai": [{"provider": "primary", "model": "gpt-test"}],
            "claude": [{"provider": "claude", "model": "claude-echo"}],
            "gemini": [{"provider": "gem", "model": "gemini-echo"}],
            "claude-or-openai": [
                {"provider": "claude", "model": "claude-echo"},
                {"provider": "primary", "model": "gpt-test"},
            ],
        }
    )
    config.update(sections)
    return config


@dataclass
class ServedGateway:
    """A gateway served by uvicorn on loopback: the SDK and a raw client aimed at it."""

    url: str
    sdk: AsyncAnthropic
    http: httpx.AsyncClient


GatewayFactory = Callable[..., AbstractAsyncContextManager[ServedGateway]]


@pytest.fixture
def gateway_for() -> GatewayFactory:
    """``async with gateway_for(settings) as gw``: the app under a real uvicorn, the
    official ``anthropic`` SDK (``x-api-key``, no SDK retries) and a raw httpx client."""

    @asynccontextmanager
    async def make(settings: Settings, api_key: str = CLIENT_KEY) -> AsyncIterator[ServedGateway]:
        with serve_app(create_app(settings, configure_logs=False)) as url:
            sdk = AsyncAnthropic(base_url=url, api_key=api_key, max_retries=0, timeout=20)
            async with sdk, httpx.AsyncClient(base_url=url, timeout=20) as http:
                yield ServedGateway(url, sdk, http)

    return make


@pytest.fixture
def messages_settings(
    make_settings: Any, upstreams: Upstreams, messages_upstreams: MessagesUpstreams
) -> Callable[..., Settings]:
    """Settings over every loopback upstream; keyword sections override (``cache=...``)."""

    def make(**sections: Any) -> Settings:
        settings: Settings = make_settings(
            messages_config(upstreams, messages_upstreams, **sections), ENVIRON
        )
        return settings

    return make
