"""Indexing one attached file into its vector store: read the blob, chunk, embed, upsert,
then record the attachment ``completed`` or ``failed``.

:meth:`Indexer.process_file` is the work the service hands to an in-process task or a
durable queue when a file is attached (see :mod:`.service`); it reads everything but the
two ids from the records, so a queue's worker in another process runs it alike.
:meth:`Indexer.write` is the upsert itself (``aiservice ingest`` writes precomputed
vectors through it): the store's collection is created with the first vector's dimension.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError
from ..observability.metrics import counter
from .base import Comparison, Compound, Point, VectorBackend
from .blobs import BlobStore
from .chunking import ChunkSpec, chunk_text, is_markdown
from .meta import MetaStore, point_id
from .occupancy import Occupancy

if TYPE_CHECKING:
    from ..config.vectors import VectorsSettings
    from .service import Embed

__all__ = ["UPSERTED", "Indexer"]

log = logging.getLogger("aiservice.vectors")

UPSERTED = counter(
    "aiservice_vectors_upserted_total", "Vectors written to vector stores.", ("source",)
)


class Indexer:
    """Writes attached files and precomputed points into the stores' collections."""

    def __init__(
        self,
        settings: VectorsSettings,
        backend: VectorBackend,
        blobs: BlobStore,
        embed: Embed,
        meta: MetaStore,
        occupancy: Occupancy,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.blobs = blobs
        self.embed = embed
        self.meta = meta
        self.occupancy = occupancy

    def collection(self, store_id: str) -> str:
        return f"{self.settings.collection_prefix}{store_id}"

    async def process_file(self, store_id: str, file_id: str) -> None:
        """Chunk, embed and upsert one attached file; record ``completed`` or ``failed``."""
        key = f"{store_id}/{file_id}"
        record = await self.meta.get("vsfile", key)
        if record is None:
            return  # detached meanwhile
        try:
            written = await self._index(store_id, file_id, record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            code = "invalid_file" if isinstance(exc, InvalidRequestError) else "server_error"
            if code == "server_error":
                log.exception("indexing %s into %s failed", file_id, store_id)
            record.update(status="failed", last_error={"code": code, "message": str(exc)[:500]})
        else:
            record.update(status="completed", usage_bytes=written)
        if await self.meta.get("vsfile", key) is not None:  # not detached while running
            await self.meta.put("vsfile", key, record)

    async def _index(self, store_id: str, file_id: str, record: dict[str, Any]) -> int:
        data = await self.blobs.get(file_id)
        if data is None:
            raise InvalidRequestError(f"the bytes of {file_id} are gone")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError("only UTF-8 text and Markdown files can be indexed") from exc
        size, overlap, unit = record["chunks"]
        spec = ChunkSpec(size, overlap, unit)
        chunks = chunk_text(text, spec, markdown=is_markdown(record["filename"]))
        base = {"file_id": file_id, "filename": record["filename"]}
        points: list[Point] = []
        for start in range(0, len(chunks), self.settings.embed_batch):
            batch = chunks[start : start + self.settings.embed_batch]
            vectors = await self.embed(batch, record.get("owner"))
            points += [
                Point(
                    point_id(store_id, file_id, str(start + i)),
                    vector,
                    {**base, "chunk": start + i, "text": text_, "attributes": record["attributes"]},
                )
                for i, (text_, vector) in enumerate(zip(batch, vectors, strict=True))
            ]
        await self.write(store_id, points, "attach")
        stale = Compound(
            "and", (Comparison("file_id", "eq", file_id), Comparison("chunk", "gte", len(chunks)))
        )
        await self.backend.delete(self.collection(store_id), filter=stale)
        return sum(len(c.encode()) for c in chunks)

    async def write(self, store_id: str, points: list[Point], source: str) -> None:
        """Upsert into the store's collection, created with the first vector's dimension."""
        if not points or points[0].vector is None:
            return
        name = self.collection(store_id)
        dim = await self.backend.dimension(name)
        if dim is None:
            indexed = {f"attributes.{k}": v for k, v in self.settings.attributes.items()}
            indexed.update({"file_id": "keyword", "filename": "keyword", "chunk": "integer"})
            await self.backend.ensure_collection(
                name, len(points[0].vector), self.settings.distance, indexed
            )
        await self.backend.upsert(name, points)
        self.occupancy.filled(name)
        UPSERTED.labels(source).inc(len(points))
