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
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...cache.ratelimit import Admission, PendingAdmission
from ...cpu import run_cpu
from ...providers.http import loads_bytes
from .keys import chat_key, embedding_key
from .policy import CACHE_STATUS_HEADER, CachePolicy, CacheStatus, cache_requests
from .responses import ResponseCache, Upstream

if TYPE_CHECKING:
    from ...runtime import Runtime
    from ...security.apikeys import Principal
    from ..deployments import Deployment
    from ..gateway import Gateway, StreamResult

__all__ = [
    "ChatAnswer",
    "EmbedAnswer",
    "StreamAnswer",
    "cached_chat",
    "cached_embed",
    "cached_stream",
]

Chunk = dict[str, Any]
_BYPASS = cache_requests("bypass")


@dataclass(slots=True)
class ChatAnswer:
    completion: Chunk
    status: CacheStatus
    headers: dict[str, str]
    """``x-aiservice-cache`` and the answering deployment (``x-aiservice-provider/model``)."""
    admission: Admission | None = None
    """The rate-limit admission given as ``admission=`` (its ``x-ratelimit-*`` headers)."""


@dataclass(slots=True)
class StreamAnswer:
    chunks: AsyncIterator[Chunk]
    status: CacheStatus
    headers: dict[str, str]
    admission: Admission | None = None
    batches: AsyncIterator[list[Chunk]] | None = None
    """The chunks per network read, when the cache is bypassed and the provider reads in
    batches (see :class:`~aiservice.llm.gateway.StreamResult`): iterate one of the two."""


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
    """The gateway calls of one request, recording which deployment answered.

    The model is resolved once, here (404 for an unknown one, before any I/O), and the
    request was checked by the caller (``check_chat``): the gateway does neither again.
    """

    def __init__(
        self,
        gateway: Gateway,
        model: str,
        request: Chunk,
        principal: Principal | None,
        deployments: Sequence[Deployment] | None = None,
    ) -> None:
        self.gateway, self.model, self.request, self.principal = gateway, model, request, principal
        self.deployments = gateway.resolve(model) if deployments is None else deployments
        self.meta: dict[str, str] = {}

    async def complete(self) -> Chunk:
        result = await self.gateway.chat(
            self.model, self.request, self.principal, deployments=self.deployments, checked=True
        )
        self.meta = _meta(result.deployment)
        return result.completion

    async def open_stream(self) -> StreamResult:
        result = await self.gateway.stream(
            self.model, self.request, self.principal, deployments=self.deployments, checked=True
        )
        self.meta = _meta(result.deployment)
        return result

    async def stream(self) -> AsyncIterator[Chunk]:
        result = await self.open_stream()
        async for chunk in result.chunks:
            yield chunk

    def key(self, cache: ResponseCache, request: Chunk | None = None) -> str:
        """``request``: what the key covers instead of the chat request, if given."""
        primary = self.deployments[0]
        keyed = self.request if request is None else request
        return chat_key(primary.provider_name, primary.model, keyed, cache.namespace)

    def upstream(self) -> Upstream:
        return Upstream(self.complete, self.stream, lambda: dict(self.meta))


def _meta(d: Deployment) -> dict[str, str]:
    return {"provider": d.provider_name, "model": d.model}


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
    *,
    deployments: Sequence[Deployment] | None = None,
    admission: PendingAdmission | None = None,
) -> ChatAnswer:
    """A non-stream chat completion through the cache (``check_chat`` already ran;
    ``deployments``: ``model`` already resolved; ``admission``: the request's rate-limit
    admission, run in the cache lookup's round trip, or alone when the cache is bypassed)."""
    active = _active(runtime, request, headers)
    calls = _Calls(gateway, model, request, principal, deployments)
    if active is None:
        admitted = await _admit(admission)
        completion = await calls.complete()
        _BYPASS.inc()
        return ChatAnswer(completion, "bypass", _headers("bypass", calls.meta), admitted)
    cache, policy = active
    result = await cache.complete(calls.key(cache), policy, calls.upstream(), admission)
    headers_ = _headers(result.status, result.meta)
    return ChatAnswer(result.completion, result.status, headers_, result.admission)


async def cached_stream(
    runtime: Runtime,
    gateway: Gateway,
    model: str,
    request: Chunk,
    principal: Principal | None,
    headers: Mapping[str, str],
    *,
    deployments: Sequence[Deployment] | None = None,
    admission: PendingAdmission | None = None,
    key_request: Chunk | None = None,
) -> StreamAnswer:
    """A streamed chat completion through the cache; resolves at the first chunk
    (``check_chat`` already ran; ``deployments``: ``model`` already resolved).

    ``key_request`` replaces ``request`` in the cache key when the answer depends on more
    than the chat request (the Messages API route keys on the client's own body)."""
    active = _active(runtime, request, headers)
    calls = _Calls(gateway, model, request, principal, deployments)
    if active is None:
        admitted = await _admit(admission)
        result = await calls.open_stream()
        _BYPASS.inc()
        headers_ = _headers("bypass", calls.meta)
        return StreamAnswer(result.chunks, "bypass", headers_, admitted, result.batches)
    cache, policy = active
    streamed = await cache.stream(
        calls.key(cache, key_request), policy, calls.upstream(), admission
    )
    headers_ = _headers(streamed.status, streamed.meta)
    return StreamAnswer(streamed.chunks, streamed.status, headers_, streamed.admission)


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
            entries = await _encode_entries(list(by_key.values()))
            await asyncio.gather(
                *(
                    cache.backend.set(k, entry, ttl)
                    for k, entry in zip(by_key, entries, strict=True)
                )
            )
    status: CacheStatus = "miss" if missing else "hit"
    cache_requests(status).inc()
    return EmbedAnswer([found[k] for k in keys], tokens, status, _headers(status, meta))


# Floats of a batch from which its cache entries are encoded on the CPU thread. The hop
# (aiservice.cpu.run_cpu) costs ~85-175 us of CPU time, as much as encoding ~110-190
# floats inline (0.7-1.0 us each: JSON of random doubles; bench/embed_entries.py on a
# shared 2-vCPU machine). Above ~3x that crossover the hop is at most a third of the
# work; below it a small vector stays inline (a 1536-float one is ~1.2 ms of loop time).
OFFLOAD_FLOATS = 512


def _entries(vectors: list[list[float]]) -> list[bytes]:
    # One vector per step: the loop thread gets the GIL back between them.
    return [json.dumps(vector).encode() for vector in vectors]


async def _encode_entries(vectors: list[list[float]]) -> list[bytes]:
    """The cache entries of ``vectors``; a large batch is encoded off the event loop."""
    if sum(len(vector) for vector in vectors) >= OFFLOAD_FLOATS:
        return await run_cpu(_entries, vectors)
    return _entries(vectors)


async def _admit(admission: PendingAdmission | None) -> Admission | None:
    return None if admission is None else await admission.run()


def _vector(raw: bytes | None) -> list[float] | None:
    if raw is None:
        return None
    try:
        value = loads_bytes(raw)  # a 1536-float vector: ~0.1 ms of loop time, not ~0.8
    except ValueError:
        return None
    return value if isinstance(value, list) else None
