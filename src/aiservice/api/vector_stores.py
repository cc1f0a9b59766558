"""OpenAI's vector store API: ``/v1/vector_stores``, its files and search.

The capability starts only when ``vectors.backend`` is set; otherwise every route of
``/v1/files`` and ``/v1/vector_stores`` answers 404 ``vector_stores_not_configured`` and
nothing of :mod:`aiservice.vectors`' backends is imported. Chunks and queries are
embedded through the gateway's embeddings path (:func:`aiservice.llm.cache.calls.cached_embed`:
the per-item embeddings cache, batching, retries, fallback) with ``vectors.embedding_model``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ServiceUnavailableError
from ..runtime import Runtime, StartupError

if TYPE_CHECKING:
    from ..vectors.service import Embed, Enqueue

__all__ = ["handle_file_message", "start"]

# The routes are in aiservice.api.vector_store_routes: imported with the deferred routers,
# so a cold start with vectors off loads neither them, their models nor aiservice.vectors.

# The Runtime field ``start`` sets, and the one it reads (embeddings go through the gateway).
PROVIDES = ("vectors",)
START_AFTER = ("gateway", "orchestrator")  # the orchestrator builds the queue


async def start(runtime: Runtime) -> None:
    cfg = runtime.settings.vectors
    if cfg.backend is None:
        return
    from ..registry import PluginImportError, PluginNotFoundError
    from ..vectors.base import BACKENDS
    from ..vectors.blobs import build_blobs
    from ..vectors.service import CONNECT, InProcess, VectorStores

    try:
        factory = BACKENDS.get(cfg.backend)
        blobs = build_blobs(cfg.files)
    except (PluginNotFoundError, PluginImportError, ValueError) as exc:
        raise StartupError(f"vectors: {exc}") from exc
    if not cfg.embedding_model:
        raise StartupError("vectors.embedding_model: required when vectors.backend is set")
    if runtime.gateway is not None:
        try:
            runtime.gateway.resolve(cfg.embedding_model)
        except Exception as exc:
            raise StartupError(f"vectors.embedding_model: {exc}") from exc
    backend = factory(runtime.settings, runtime.secrets)
    runtime.stack.push_async_callback(backend.aclose)
    runner = InProcess()
    runtime.stack.push_async_callback(runner.aclose)  # before the backend closes
    enqueue = await _enqueuer(runtime)
    service = VectorStores(cfg, backend, blobs, _embedder(runtime), runner, enqueue)
    runtime.vectors = service
    if CONNECT.get():  # not for ``aiservice check --offline``
        await service.meta.ensure()
        await service.resume_pending()  # in-process: files a stopped process left in_progress
    runtime.health.add("vectors", backend.ping, required=False)


async def _enqueuer(runtime: Runtime) -> Enqueue | None:
    """Indexing goes through ``orchestrator.queue`` when it is durable (SQS, Cloud Tasks,
    Redis Streams): a message of kind ``vectors.file``, handled by
    :func:`handle_file_message` wherever the queue is consumed. ``None``: in-process."""
    from ..orchestrator.setup import durable_queue

    queue = await durable_queue(runtime)
    if queue is None:
        return None
    from ..queues.base import VECTORS_FILE, Message

    async def enqueue(store_id: str, file_id: str) -> None:
        body = {"vector_store_id": store_id, "file_id": file_id}
        await queue.enqueue(Message(VECTORS_FILE, body))

    return enqueue


async def handle_file_message(runtime: Runtime, message: dict[str, Any]) -> None:
    """Queue worker entry for ``vectors.file``: index the attached file. Raising (vector
    stores off here, the backend down) has the message delivered again."""
    store_id, file_id = message.get("vector_store_id"), message.get("file_id")
    if not isinstance(store_id, str) or not isinstance(file_id, str):
        raise ValueError("vectors.file message without vector_store_id and file_id")
    if runtime.vectors is None:
        raise RuntimeError("vector stores are not enabled on this service (vectors.backend)")
    await runtime.vectors.indexer.process_file(store_id, file_id)


def _embedder(runtime: Runtime) -> Embed:
    model = runtime.settings.vectors.embedding_model or ""

    async def embed(texts: list[str], owner: str | None = None) -> list[list[float]]:
        gateway = runtime.gateway
        if gateway is None:
            raise ServiceUnavailableError("the LLM gateway is not started", code="not_ready")
        from ..llm.cache.calls import cached_embed  # loaded with the gateway already

        principal = runtime.keys.principal(owner) if owner else None
        answer = await cached_embed(
            runtime, gateway, model, texts, dimensions=None, principal=principal, headers={}
        )
        return answer.vectors

    return embed
