"""The response cache and coalescing around the LLM gateway, for the OpenAI routes.

The routes call :func:`cached_chat`, :func:`cached_stream` and :func:`cached_embed`
instead of the gateway methods; each returns the answer plus the headers to send
(``x-aiservice-cache`` and the answering deployment). Without the shared-state capability
they call the gateway directly (``bypass``).

* Chat keys use the model's primary deployment (what the request resolves to); the
  deployment that actually answered is stored with the entry and reported on hits.
* Embeddings are cached per input item: only misses (deduplicated) go upstream, through
  the gateway's batching (``embeddings.batch_size`` / ``concurrency`` / ``max_retries``),
  and the vectors are reassembled in input order. ``x-aiservice-cache`` is ``hit`` when
  every item was cached, else ``miss``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .keys import chat_key, embedding_key
from .policy import CACHE_STATUS_HEADER, CachePolicy, CacheStatus
from .responses import ResponseCache, Upstream, cache_requests

if TYPE_CHECKING:
    from ..llm.gateway import Gateway
    from ..runtime import Runtime
    from ..security.apikeys import Principal

__all__ = [
    "ChatAnswer",
    "EmbedAnswer",
    "StreamAnswer",
    "cached_chat",
    "cached_embed",
    "cached_stream",
]

Chunk = dict[str, Any]


@dataclass(slots=True)
class ChatAnswer:
    completion: Chunk
    status: CacheStatus
    headers: dict[str, str]
    """``x-aiservice-cache`` and the answering deployment (``x-aiservice-provider/model``)."""


@dataclass(slots=True)
class StreamAnswer:
    chunks: AsyncIterator[Chunk]
    status: CacheStatus
    headers: dict[str, str]


@dataclass(slots=True)
class EmbedAnswer:
    vectors: list[list[float]]
    input_tokens: int
    """Tokens sent upstream for this request (cached items cost none)."""
    status: CacheStatus
    headers: dict[str, str] = field(default_factory=dict)


def _cache(runtime: Runtime) -> ResponseCache | None:
    return runtime.response_cache


def _headers(status: CacheStatus, meta: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {CACHE_STATUS_HEADER: status}
    if meta.get("provider"):
        headers["x-aiservice-provider"] = meta["provider"]
    if meta.get("model"):
        headers["x-aiservice-model"] = meta["model"]
    return headers


class _Calls:
    """The gateway calls of one request, recording which deployment answered."""

    def __init__(
        self, gateway: Gateway, model: str, request: Chunk, principal: Principal | None
    ) -> None:
        self.gateway, self.model, self.request, self.principal = gateway, model, request, principal
        self.meta: dict[str, str] = {}

    async def complete(self) -> Chunk:
        result = await self.gateway.chat(self.model, self.request, self.principal)
        self.meta = {"provider": result.deployment.provider_name, "model": result.deployment.model}
        return result.completion

    async def stream(self) -> AsyncIterator[Chunk]:
        result = await self.gateway.stream(self.model, self.request, self.principal)
        self.meta = {"provider": result.deployment.provider_name, "model": result.deployment.model}
        async for chunk in result.chunks:
            yield chunk

    def upstream(self) -> Upstream:
        return Upstream(self.complete, self.stream, lambda: dict(self.meta))


def _key(cache: ResponseCache, gateway: Gateway, model: str, request: Chunk) -> str:
    primary = gateway.resolve(model)[0]  # 404 for an unknown model, before any I/O
    return chat_key(primary.provider_name, primary.model, request, cache.namespace)


def _active(
    runtime: Runtime, request: Chunk, headers: Mapping[str, str]
) -> tuple[ResponseCache, CachePolicy] | None:
    """The cache and its policy for this request, or ``None`` when it bypasses the cache
    (no cache, or a policy that neither reads nor writes): no key is hashed then."""
    cache = _cache(runtime)
    if cache is None:
        return None
    policy = cache.policy(request, headers)
    return (cache, policy) if policy.active else None


async def cached_chat(
    runtime: Runtime,
    gateway: Gateway,
    model: str,
    request: Chunk,
    principal: Principal | None,
    headers: Mapping[str, str],
) -> ChatAnswer:
    """A non-stream chat completion through the cache."""
    calls = _Calls(gateway, model, request, principal)
    active = _active(runtime, request, headers)
    if active is None:
        completion = await calls.complete()
        cache_requests("bypass").inc()
        return ChatAnswer(completion, "bypass", _headers("bypass", calls.meta))
    cache, policy = active
    result = await cache.complete(_key(cache, gateway, model, request), policy, calls.upstream())
    return ChatAnswer(result.completion, result.status, _headers(result.status, result.meta))


async def cached_stream(
    runtime: Runtime,
    gateway: Gateway,
    model: str,
    request: Chunk,
    principal: Principal | None,
    headers: Mapping[str, str],
    *,
    key_request: Chunk | None = None,
) -> StreamAnswer:
    """A streamed chat completion through the cache; resolves at the first chunk.

    ``key_request`` replaces ``request`` in the cache key when the answer depends on more
    than the chat request (the Messages API route keys on the client's own body)."""
    active = _active(runtime, request, headers)
    if active is None:
        result = await gateway.stream(model, request, principal)
        cache_requests("bypass").inc()
        meta = {"provider": result.deployment.provider_name, "model": result.deployment.model}
        return StreamAnswer(result.chunks, "bypass", _headers("bypass", meta))
    cache, policy = active
    calls = _Calls(gateway, model, request, principal)
    key = _key(cache, gateway, model, request if key_request is None else key_request)
    streamed = await cache.stream(key, policy, calls.upstream())
    return StreamAnswer(streamed.chunks, streamed.status, _headers(streamed.status, streamed.meta))


async def cached_embed(
    runtime: Runtime,
    gateway: Gateway,
    model: str,
    inputs: list[str],
    *,
    dimensions: int | None,
    principal: Principal | None,
    headers: Mapping[str, str],
) -> EmbedAnswer:
    """Embeddings with a per-item cache; only the misses go upstream."""
    active = _active(runtime, {"input": inputs}, headers)
    primary = gateway.resolve(model)[0]
    if active is None or not inputs:
        result = await gateway.embed(model, inputs, dimensions=dimensions, principal=principal)
        meta = {"provider": result.deployment.provider_name, "model": result.deployment.model}
        return EmbedAnswer(result.vectors, result.input_tokens, "bypass", _headers("bypass", meta))
    cache, policy = active
    meta = {"provider": primary.provider_name, "model": primary.model}

    keys = [
        embedding_key(primary.provider_name, primary.model, text, dimensions, cache.namespace)
        for text in inputs
    ]
    found: dict[str, list[float]] = {}
    if policy.read:
        unique = list(dict.fromkeys(keys))
        raw = await asyncio.gather(*(cache.backend.get(k) for k in unique))
        found = {k: v for k, r in zip(unique, raw, strict=True) if (v := _vector(r)) is not None}
    missing = list(dict.fromkeys(t for t, k in zip(inputs, keys, strict=True) if k not in found))
    tokens = 0
    if missing:
        result = await gateway.embed(model, missing, dimensions=dimensions, principal=principal)
        tokens = result.input_tokens
        meta = {"provider": result.deployment.provider_name, "model": result.deployment.model}
        fresh = dict(zip(missing, result.vectors, strict=True))
        by_key = {k: fresh[t] for t, k in zip(inputs, keys, strict=True) if t in fresh}
        found.update(by_key)
        if policy.write:
            ttl = policy.ttl if policy.ttl is not None else cache.default_ttl
            await asyncio.gather(
                *(cache.backend.set(k, json.dumps(v).encode(), ttl) for k, v in by_key.items())
            )
    status: CacheStatus = "miss" if missing else "hit"
    cache_requests(status).inc()
    return EmbedAnswer([found[k] for k in keys], tokens, status, _headers(status, meta))


def _vector(raw: bytes | None) -> list[float] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) else None
