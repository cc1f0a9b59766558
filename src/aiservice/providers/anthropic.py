"""``anthropic``: Claude through the Messages API (``POST {base_url}/v1/messages``).

Configuration: ``api_key`` (literal or ``secret://`` reference, resolved per request so a
rotated secret is picked up), ``base_url`` (default ``https://api.anthropic.com``; proxies
and gateways that speak the Messages API), ``api_version`` (the ``anthropic-version``
header, default ``2023-06-01``), ``timeout``, ``headers``.

Translation lives in :mod:`.anthropic_translate`. A Messages API request from a client
(:class:`~.anthropic_native.MessagesRequest`) is sent as the client wrote it, see
:mod:`.anthropic_native`. Embeddings: Anthropic has no embeddings
API, so :meth:`AnthropicProvider.embed` raises :class:`~aiservice.errors.InvalidRequestError`
(HTTP 400, code ``unsupported``) naming the provider — a configuration mistake the client
should see at once, not an upstream failure to retry or fall back from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InvalidRequestError
from ..observability.redact import register_secret
from ..secrets.base import SecretError
from .anthropic_native import MessagesRequest, NativeEvents, native_body
from .anthropic_translate import AnthropicStream, from_messages_response, to_messages_request
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult, ProviderError
from .jsonhttp import JsonHttp
from .upstream import build_client

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider:
    """One configured Anthropic upstream; see the module docstring."""

    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        if not config.api_key:
            raise ConfigError("the anthropic provider needs an api_key", key=f"providers.{name}")
        self.name = name
        self._config = config
        self._secrets = secrets
        self._version = config.api_version or DEFAULT_VERSION
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._http = JsonHttp(build_client(name, config, base_url))

    async def _auth(self) -> tuple[dict[str, str], str]:
        assert self._config.api_key is not None
        try:
            key = await self._secrets.resolve(self._config.api_key)
        except SecretError as exc:
            raise ProviderError(str(exc), kind="auth", provider=self.name) from exc
        register_secret(key)  # literal keys too: never in a log line
        return {"x-api-key": key, "anthropic-version": self._version}, key

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        if isinstance(request, MessagesRequest):
            body = native_body(model, request, stream=False)
        else:
            body = to_messages_request(model, request)
        headers, key = await self._auth()
        response = await self._http.request("POST", "/v1/messages", headers, body, secret=key)
        return from_messages_response(response)

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        translator: AnthropicStream | NativeEvents
        if isinstance(request, MessagesRequest):
            body = native_body(model, request, stream=True)
            translator = NativeEvents(self.name, model)
        else:
            body = {**to_messages_request(model, request), "stream": True}
            translator = AnthropicStream(self.name, model)
        headers, key = await self._auth()
        events = self._http.stream("/v1/messages", headers, body, secret=key)
        async with aclosing(events):
            async for event in events:
                for chunk in translator.feed(self._http.event_json(event)):
                    yield chunk
                if translator.done:
                    return
        translator.finish()

    async def count_message_tokens(self, model: str, body: dict[str, Any]) -> int:
        """``POST /v1/messages/count_tokens``: the exact input tokens of a Messages body."""
        headers, key = await self._auth()
        sent = {**body, "model": model}
        answer = await self._http.request(
            "POST", "/v1/messages/count_tokens", headers, sent, secret=key
        )
        tokens = answer.get("input_tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            raise ProviderError(f"{self.name} returned no input_tokens count", kind="protocol")
        return tokens

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        raise InvalidRequestError(
            f"provider {self.name!r} (anthropic) does not support embeddings; "
            "route embedding models to an openai, gemini, bedrock or ollama provider",
            code="unsupported",
            param="model",
        )

    async def list_models(self) -> list[str]:
        headers, key = await self._auth()
        names: list[str] = []
        params = {"limit": "1000"}
        while True:
            page = await self._http.request("GET", "/v1/models", headers, params=params, secret=key)
            names.extend(m["id"] for m in page.get("data") or [] if m.get("id"))
            if not page.get("has_more") or not page.get("last_id"):
                return names
            params = {"limit": "1000", "after_id": page["last_id"]}

    async def probe(self) -> str:
        """One page of ``GET /v1/models``: authenticated, costs no tokens."""
        headers, key = await self._auth()
        params = {"limit": "1"}
        await self._http.request("GET", "/v1/models", headers, params=params, secret=key)
        return "authenticated"

    async def aclose(self) -> None:
        await self._http.aclose()
