"""The vector store service behind ``/v1/files`` and ``/v1/vector_stores``.

Embeddings come in as a function (:data:`Embed`), so this package stays below the gateway:
the API passes one that goes through the gateway's embeddings path (its per-item cache,
batching, retries and fallback); the CLI passes the gateway or nothing (precomputed
vectors).

Attaching a file answers at once with status ``in_progress``; the work — read the blob,
chunk, embed, upsert, then mark ``completed`` or ``failed`` — is :meth:`~.indexing.
Indexer.process_file`, a coroutine of two string ids handed to :data:`Submit`. By default an
in-process task runs it (:class:`InProcess`). With :data:`Enqueue` set (a durable queue:
the API passes one when ``orchestrator.queue`` is SQS, Cloud Tasks or Redis Streams),
attaching enqueues ``(vector_store_id, file_id)`` instead and the queue's worker calls
``process_file``, which reads everything else from the records.

Access: every store and file records the principal that created it (``owner``); with
``sharing: owner`` another key gets 404, as if it did not exist. Admin keys see all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidRequestError, NotFoundError, ServiceUnavailableError
from ..observability.metrics import histogram
from .base import Comparison, DimensionError, VectorBackend
from .blobs import BlobStore
from .chunking import ChunkSpec, strategy_spec
from .filters import check_attributes, parse_filters
from .indexing import Indexer
from .meta import MetaStore, file_object, search_page, store_file_object, store_object
from .occupancy import Occupancy

if TYPE_CHECKING:
    from ..config.vectors import VectorsSettings
    from ..security.apikeys import Principal

__all__ = ["CONNECT", "Embed", "Enqueue", "InProcess", "Submit", "VectorStores"]

log = logging.getLogger("aiservice.vectors")


class Embed(Protocol):
    """Vectors for ``texts``, embedded on behalf of ``owner`` (the name of the key that
    owns the store or file, or ``None``), whose usage the embedding tokens count in."""

    async def __call__(self, texts: list[str], owner: str | None = None) -> list[list[float]]:
        """One vector per text, in order."""
        ...


Submit = Callable[[Coroutine[Any, Any, None]], None]
CONNECT: ContextVar[bool] = ContextVar("aiservice_vectors_connect", default=True)
"""Whether starting the service contacts the backend (the metadata collection, files left
``in_progress``). ``aiservice check --offline`` starts it without."""

Enqueue = Callable[[str, str], Awaitable[None]]
"""``enqueue(vector_store_id, file_id)``: hand the indexing to a durable queue; raise if
the queue did not accept it."""

SEARCH_SECONDS = histogram(
    "aiservice_vector_search_duration_seconds",
    "Vector store search latency (query embedding included).",
    (),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

PURPOSES = ("assistants", "user_data")


class InProcess:
    """Runs submitted work as tasks of this process; cancels what is left on close."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _now() -> int:
    return int(time.time())


class VectorStores:
    def __init__(
        self,
        settings: VectorsSettings,
        backend: VectorBackend,
        blobs: BlobStore,
        embed: Embed,
        submit: Submit,
        enqueue: Enqueue | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.blobs = blobs
        self.embed = embed
        self.submit = submit
        self.enqueue = enqueue
        self.meta = MetaStore(backend, f"{settings.collection_prefix}meta")
        self.occupancy = Occupancy(backend)  # an empty store's search embeds nothing
        self.indexer = Indexer(settings, backend, blobs, embed, self.meta, self.occupancy)

    def collection(self, store_id: str) -> str:
        return self.indexer.collection(store_id)

    def _visible(self, record: dict[str, Any] | None, who: Principal | None) -> bool:
        if record is None:
            return False
        return (
            who is None
            or who.admin
            or self.settings.sharing == "all"
            or (record.get("owner") == who.name)
        )

    def _owner_filter(self, who: Principal | None) -> dict[str, str]:
        if who is None or who.admin or self.settings.sharing == "all":
            return {}
        return {"owner": who.name}

    # -- files ---------------------------------------------------------------------------

    async def upload(
        self, data: bytes, filename: str, purpose: str, who: Principal | None
    ) -> dict[str, Any]:
        if purpose not in PURPOSES:
            raise InvalidRequestError(
                f"purpose must be one of {', '.join(PURPOSES)}", param="purpose"
            )
        limit = self.settings.files.max_bytes
        if len(data) > limit:
            from ..errors import PayloadTooLargeError

            raise PayloadTooLargeError(
                f"file exceeds the limit of {limit} bytes", param="vectors.files.max_bytes"
            )
        file_id = f"file-{uuid.uuid4().hex}"
        await self.blobs.put(file_id, data)
        record = {
            "id": file_id,
            "bytes": len(data),
            "created_at": _now(),
            "filename": filename[:256],
            "purpose": purpose,
            "owner": who.name if who else None,
        }
        try:
            await self.meta.put("file", file_id, record)
        except BaseException:
            await self.blobs.delete(file_id)  # no blob without its record
            raise
        return file_object(record)

    async def _file(self, file_id: str, who: Principal | None) -> dict[str, Any]:
        record = await self.meta.get("file", file_id)
        if not self._visible(record, who):
            raise NotFoundError(f"no file {file_id!r}", code="file_not_found", param="file_id")
        assert record is not None
        return record

    async def get_file(self, file_id: str, who: Principal | None) -> dict[str, Any]:
        return file_object(await self._file(file_id, who))

    async def delete_file(self, file_id: str, who: Principal | None) -> dict[str, Any]:
        await self._file(file_id, who)
        await self.meta.delete("file", [file_id])
        await self.blobs.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    # -- stores --------------------------------------------------------------------------

    async def create_store(
        self,
        who: Principal | None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        store_id: str | None = None,
    ) -> dict[str, Any]:
        store_id = store_id or f"vs_{uuid.uuid4().hex}"
        record = {
            "id": store_id,
            "name": name,
            "created_at": _now(),
            "last_active_at": _now(),
            "metadata": metadata or {},
            "owner": who.name if who else None,
        }
        await self.meta.put("store", store_id, record)
        return store_object(record, [])

    async def _store(self, store_id: str, who: Principal | None) -> dict[str, Any]:
        record = await self.meta.get("store", store_id)
        if not self._visible(record, who):
            raise NotFoundError(
                f"no vector store {store_id!r}",
                code="vector_store_not_found",
                param="vector_store_id",
            )
        assert record is not None
        return record

    async def store_exists(self, store_id: str) -> bool:
        return await self.meta.get("store", store_id) is not None

    async def get_store(self, store_id: str, who: Principal | None) -> dict[str, Any]:
        record = await self._store(store_id, who)
        return store_object(record, await self.meta.find("vsfile", vector_store_id=store_id))

    async def list_stores(self, who: Principal | None) -> list[dict[str, Any]]:
        records = await self.meta.find("store", **self._owner_filter(who))
        records.sort(key=lambda r: (-r["created_at"], r["id"]))
        files = await self.meta.find("vsfile")
        by_store: dict[str, list[dict[str, Any]]] = {}
        for f in files:
            by_store.setdefault(f["vector_store_id"], []).append(f)
        return [store_object(r, by_store.get(r["id"], [])) for r in records]

    async def delete_store(self, store_id: str, who: Principal | None) -> dict[str, Any]:
        await self._store(store_id, who)
        await self.backend.drop(self.collection(store_id))
        self.occupancy.forget(self.collection(store_id))
        files = await self.meta.find("vsfile", vector_store_id=store_id)
        await self.meta.delete("vsfile", [f"{store_id}/{f['id']}" for f in files])
        await self.meta.delete("store", [store_id])
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # -- attached files ------------------------------------------------------------------

    async def attach(
        self,
        store_id: str,
        file_id: str,
        who: Principal | None,
        attributes: Any = None,
        chunking_strategy: Any = None,
    ) -> dict[str, Any]:
        cfg = self.settings.chunking
        default = ChunkSpec(cfg.size, cfg.overlap, cfg.unit)
        spec = strategy_spec(chunking_strategy, default)  # the body first: a 400 costs no lookup
        checked = check_attributes(attributes, self.settings.attributes)
        await self._store(store_id, who)
        file = await self._file(file_id, who)
        tokens = spec.unit == "tokens"
        record = {
            "id": file_id,
            "vector_store_id": store_id,
            "created_at": _now(),
            "status": "in_progress",
            "last_error": None,
            "usage_bytes": 0,
            "attributes": checked,
            "filename": file["filename"],
            "chunking_strategy": {
                "type": "static",
                "static": {
                    "max_chunk_size_tokens": spec.size if tokens else spec.size // 4,
                    "chunk_overlap_tokens": spec.overlap if tokens else spec.overlap // 4,
                },
            },
            "chunks": [spec.size, spec.overlap, spec.unit],
            "owner": who.name if who else None,  # the indexing's tokens count as its usage
        }
        await self.meta.put("vsfile", f"{store_id}/{file_id}", record)
        if self.enqueue is None:
            self.submit(self.indexer.process_file(store_id, file_id))
        else:
            await self._enqueue(store_id, file_id, record)
        return store_file_object(record)

    async def _enqueue(self, store_id: str, file_id: str, record: dict[str, Any]) -> None:
        assert self.enqueue is not None
        try:
            await self.enqueue(store_id, file_id)
        except Exception as exc:
            # Nothing will index it: say so in the record rather than leave it in_progress.
            reason = f"could not enqueue the file: {type(exc).__name__}"
            record.update(status="failed", last_error={"code": "server_error", "message": reason})
            await self.meta.put("vsfile", f"{store_id}/{file_id}", record)
            raise ServiceUnavailableError(reason, code="queue_unavailable") from exc

    async def resume_pending(self) -> int:
        """Submit again every attached file still ``in_progress`` (the process that was
        indexing it stopped). Safe to repeat: indexing rewrites the same point ids. Not
        with a durable queue: it holds the work until it is done."""
        if self.enqueue is not None:
            return 0
        pending = [r for r in await self.meta.find("vsfile") if r["status"] == "in_progress"]
        for record in pending:
            self.submit(self.indexer.process_file(record["vector_store_id"], record["id"]))
        return len(pending)

    async def list_files(self, store_id: str, who: Principal | None) -> list[dict[str, Any]]:
        await self._store(store_id, who)
        records = await self.meta.find("vsfile", vector_store_id=store_id)
        records.sort(key=lambda r: (-r["created_at"], r["id"]))
        return [store_file_object(r) for r in records]

    async def get_store_file(
        self, store_id: str, file_id: str, who: Principal | None
    ) -> dict[str, Any]:
        await self._store(store_id, who)
        record = await self.meta.get("vsfile", f"{store_id}/{file_id}")
        if record is None:
            raise NotFoundError(
                f"no file {file_id!r} in vector store {store_id!r}",
                code="file_not_found",
                param="file_id",
            )
        return store_file_object(record)

    async def detach(self, store_id: str, file_id: str, who: Principal | None) -> dict[str, Any]:
        await self.get_store_file(store_id, file_id, who)
        await self.meta.delete("vsfile", [f"{store_id}/{file_id}"])
        name = self.collection(store_id)
        await self.backend.delete(name, filter=Comparison("file_id", "eq", file_id))
        self.occupancy.forget(name)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    # -- search --------------------------------------------------------------------------

    async def search(
        self,
        store_id: str,
        who: Principal | None,
        query: str | list[str],
        max_num_results: int = 10,
        filters: Any = None,
        score_threshold: float | None = None,
    ) -> dict[str, Any]:
        await self._store(store_id, who)
        if not 1 <= max_num_results <= self.settings.max_results:
            raise InvalidRequestError(
                f"max_num_results must be between 1 and {self.settings.max_results}",
                param="max_num_results",
            )
        queries = [query] if isinstance(query, str) else list(query)
        if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise InvalidRequestError("query must be a non-empty string", param="query")
        condition = parse_filters(filters, self.settings.attributes)
        if await self.occupancy.empty(self.collection(store_id)):
            return search_page(queries, [])  # nothing to find: no query embedding
        started = time.perf_counter()
        [vector] = await self.embed([" ".join(queries)], who.name if who else None)
        try:
            hits = await self.backend.search(
                self.collection(store_id), vector, max_num_results, condition, score_threshold
            )
        except DimensionError as exc:
            raise InvalidRequestError(
                f"the query embedding does not fit this store: {exc.message}",
                code="dimension_mismatch",
                param="query",
            ) from exc
        SEARCH_SECONDS.observe(time.perf_counter() - started)
        return search_page(queries, hits)
