"""Session-wide real upstream servers for the gateway and API tests, and the config that
points an app at them. Import the fixtures into a conftest to use them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from aiservice import Settings
from tests.support.servers import serve_app
from tests.support.upstream_ollama import OllamaUpstream
from tests.support.upstream_openai import OpenAIUpstream

PRIMARY_KEY = "sk-primary-secret-value-0042"
BACKUP_KEY = "sk-backup-literal-key-0043"
CLIENT_KEY = "client-key-00000001"
ADMIN_KEY = "admin-key-00000001"


@dataclass
class Upstreams:
    primary: OpenAIUpstream
    primary_url: str
    backup: OpenAIUpstream
    backup_url: str
    ollama: OllamaUpstream
    ollama_url: str

    def reset(self) -> None:
        for upstream in (self.primary, self.backup, self.ollama):
            upstream.reset()


@pytest.fixture(scope="session")
def upstream_servers() -> Iterator[Upstreams]:
    primary = OpenAIUpstream()
    backup = OpenAIUpstream(reply_prefix="backup: ")
    ollama = OllamaUpstream()
    with (
        serve_app(primary.app) as primary_url,
        serve_app(backup.app) as backup_url,
        serve_app(ollama.app) as ollama_url,
    ):
        yield Upstreams(primary, primary_url, backup, backup_url, ollama, ollama_url)


@pytest.fixture
def upstreams(upstream_servers: Upstreams) -> Iterator[Upstreams]:
    upstream_servers.reset()
    yield upstream_servers
    upstream_servers.reset()


def llm_config(u: Upstreams, **provider_overrides: Any) -> dict[str, Any]:
    """Providers ``primary``/``backup`` (OpenAI-compatible), ``local`` (Ollama), ``offline``
    (fake); public models ``chat`` (primary then backup), ``solo`` (primary only),
    ``embed`` and ``fake``. Fast retries so failure tests stay quick; cache off."""
    common = {"max_retries": 1, "retry_backoff": 0.01, "timeout": 5.0, **provider_overrides}
    return {
        "providers": {
            "primary": {
                "type": "openai",
                "base_url": u.primary_url + "/v1",
                "api_key": "secret://env/PRIMARY_KEY",
                **common,
            },
            "backup": {
                "type": "openai",
                "base_url": u.backup_url + "/v1",
                "api_key": BACKUP_KEY,
                **common,
            },
            "local": {"type": "ollama", "base_url": u.ollama_url, **common},
            "offline": {"type": "fake"},
        },
        "models": {
            "chat": [
                {"provider": "primary", "model": "gpt-test"},
                {"provider": "backup", "model": "gpt-backup"},
            ],
            "solo": [{"provider": "primary", "model": "gpt-test"}],
            "embed": [{"provider": "primary", "model": "embed-test"}],
            "fake": [{"provider": "offline", "model": "fake"}],
        },
        "pricing": {"gpt-test": {"input": 1.0, "output": 2.0}},
        "auth": {"api_keys": [CLIENT_KEY], "admin_keys": [ADMIN_KEY]},
        # These tests count upstream calls: no response cache in between.
        "cache": {"mode": "off"},
    }


ENVIRON = {"PRIMARY_KEY": PRIMARY_KEY}

SdkFactory = Callable[..., AbstractAsyncContextManager[tuple[AsyncOpenAI, httpx.AsyncClient]]]


@pytest.fixture
def sdk_for(client_for: Any) -> SdkFactory:
    """``async with sdk_for(settings) as (sdk, http)``: the official SDK bound to a fresh
    in-process app (lifespan run), no SDK-side retries; ``http`` is the raw client."""

    @asynccontextmanager
    async def make(
        settings: Settings, api_key: str = CLIENT_KEY
    ) -> AsyncIterator[tuple[AsyncOpenAI, httpx.AsyncClient]]:
        async with client_for(settings) as http:
            sdk = AsyncOpenAI(
                base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0
            )
            yield sdk, http

    return make
