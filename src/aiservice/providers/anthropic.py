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
from .anthropic_native import MessagesRequest, NativeEvents, native_body
from .anthropic_translate import AnthropicStream, from_messages_response, to_messages_request
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult, ProviderError
from .http import KeyHeaders
from .jsonhttp import JsonHttp
from .upstream import build_client, read_to_end

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["AnthropicProvider", "anthropic_key"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"


def anthropic_key(secrets: SecretResolver, reference: str) -> KeyHeaders:
    """The Messages API's auth: the key in ``x-api-key`` (not a bearer token)."""
    return KeyHeaders(secrets, reference, lambda key: {"x-api-key": key})


class AnthropicProvider:
    """One configured Anthropic upstream; see the module docstring."""

    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        if not config.api_key:
            raise ConfigError("the anthropic provider needs an api_key", key=f"providers.{name}")
        self.name = name
        self._config = config
        # Not an auth header, but every request carries it.
        self._version = {"anthropic-version": config.api_version or DEFAULT_VERSION}
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        auth = anthropic_key(secrets, config.api_key)
        self._http = JsonHttp(build_client(name, config, base_url, auth=auth))

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        if isinstance(request, MessagesRequest):
            body = native_body(model, request, stream=False)
        else:
            body = to_messages_request(model, request)
        response = await self._http.request("POST", "/v1/messages", self._version, body)
        return from_messages_response(response)

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        translator: AnthropicStream | NativeEvents
        if isinstance(request, MessagesRequest):
            body = native_body(model, request, stream=True)
            translator = NativeEvents(self.name, model)
        else:
            body = {**to_messages_request(model, request), "stream": True}
            translator = AnthropicStream(self.name, model)
        events = self._http.stream("/v1/messages", self._version, body)
        async with aclosing(events):
            async for event in events:
                for chunk in translator.feed(self._http.event_json(event)):
                    yield chunk
                if translator.done:
                    await read_to_end(events)  # the connection stays reusable
                    return
        translator.finish()

    async def count_message_tokens(self, model: str, body: dict[str, Any]) -> int:
        """``POST /v1/messages/count_tokens``: the exact input tokens of a Messages body."""
        sent = {**body, "model": model}
        answer = await self._http.request("POST", "/v1/messages/count_tokens", self._version, sent)
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
        names: list[str] = []
        params = {"limit": "1000"}
        while True:
            page = await self._http.request("GET", "/v1/models", self._version, params=params)
            names.extend(m["id"] for m in page.get("data") or [] if m.get("id"))
            if not page.get("has_more") or not page.get("last_id"):
                return names
            params = {"limit": "1000", "after_id": page["last_id"]}

    async def probe(self) -> str:
        """One page of ``GET /v1/models``: authenticated, costs no tokens."""
        params = {"limit": "1"}
        await self._http.request("GET", "/v1/models", self._version, params=params)
        return "authenticated"

    async def aclose(self) -> None:
        await self._http.aclose()
