"""Qdrant through ``qdrant-client``'s ``AsyncQdrantClient`` (``pip install 'aiservice[qdrant]'``).

Two modes, from ``vectors``:

* embedded (default): ``location`` is ``:memory:`` or a directory. Qdrant's local mode runs
  in this process (no server); a directory is locked by one process at a time, so stop the
  service before ``aiservice ingest`` writes to the same directory. Local mode ignores
  payload indexes (it filters by scanning), so none are created there. On disk it commits
  every point to SQLite; this backend switches those files to WAL with ``synchronous=
  NORMAL`` (:func:`_tune_local`): a killed process loses nothing committed, a power cut
  may lose the last writes, and imports run an order of magnitude faster than with an
  fsync per point. Production data belongs on a Qdrant server.
* server: ``url`` (``http://qdrant:6333``), ``api_key`` (a secret reference), and
  ``prefer_grpc`` for gRPC on port 6334. Filterable attributes get payload indexes.

Filters are translated by :func:`qdrant_filter`, a pure function.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from .base import (
    AttributeType,
    Comparison,
    Distance,
    Filter,
    Hit,
    Point,
    check_dimensions,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["QdrantBackend", "qdrant_filter"]

_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
}
_SCHEMAS = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
    "bool": models.PayloadSchemaType.BOOL,
}


def _condition(f: Filter) -> models.Condition:
    if not isinstance(f, Comparison):
        inner = [_condition(sub) for sub in f.filters]
        return models.Filter(must=inner) if f.op == "and" else models.Filter(should=inner)
    key, value = f.key, f.value
    if f.op in ("in", "nin"):
        values: Any = value if isinstance(value, list) else [value]
        if f.op == "in":
            return models.FieldCondition(key=key, match=models.MatchAny(any=values))
        return models.FieldCondition(key=key, match=models.MatchExcept(**{"except": values}))
    if f.op in ("eq", "ne"):
        if isinstance(value, float) and not isinstance(value, bool):
            cond = models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
        else:
            cond = models.FieldCondition(key=key, match=models.MatchValue(value=value))
        return cond if f.op == "eq" else models.Filter(must_not=[cond])
    bound = {f.op: value}
    return models.FieldCondition(key=key, range=models.Range(**bound))


def qdrant_filter(f: Filter | None) -> models.Filter | None:
    """Our filter as Qdrant's (``and`` → ``must``, ``or`` → ``should``, ``ne`` → ``must_not``)."""
    if f is None:
        return None
    cond = _condition(f)
    return cond if isinstance(cond, models.Filter) else models.Filter(must=[cond])


def _missing(exc: Exception) -> bool:
    """A collection that does not exist (local mode: ValueError; server: 404)."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 404
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()


def _vector(point: Point) -> Any:
    return point.vector if point.vector is not None else {}  # {}: no named vectors


def _tune_local(client: AsyncQdrantClient, done: set[int]) -> None:
    """WAL + ``synchronous=NORMAL`` on local mode's SQLite files (see the module docstring).

    Reaches into qdrant-client's local mode (``collections[..].storage.storage``); when a
    release moves it, nothing is tuned and writes are only slower.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None) or {}
    for collection in list(collections.values()):
        conn = getattr(getattr(collection, "storage", None), "storage", None)
        if isinstance(conn, sqlite3.Connection) and id(conn) not in done:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            done.add(id(conn))


def _secret(secrets: SecretResolver | None, value: str | None) -> str | None:
    if value is None or secrets is None:
        return value
    from ..secrets.base import SecretError

    try:
        return secrets.cached(value)
    except SecretError:  # not resolved by the runtime yet (the CLI)
        return secrets.fetch_sync(value)


class QdrantBackend:
    name = "qdrant"

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        cfg = settings.vectors
        self.server = cfg.url is not None
        if self.server:
            self.client = AsyncQdrantClient(
                url=cfg.url,
                api_key=_secret(secrets, cfg.api_key),
                prefer_grpc=cfg.prefer_grpc,
                timeout=int(cfg.timeout_seconds),
            )
        elif cfg.location == ":memory:":
            self.client = AsyncQdrantClient(location=":memory:")
        else:
            self.client = AsyncQdrantClient(path=cfg.location)
        self._on_disk = not self.server and cfg.location != ":memory:"
        self._tuned: set[int] = set()
        self._dims: dict[str, int | None] = {}
        self._lock = asyncio.Lock()

    async def ensure_collection(
        self,
        name: str,
        dim: int | None,
        distance: Distance,
        indexed: dict[str, AttributeType],
    ) -> None:
        async with self._lock:  # two first attaches must not both create it
            if await self.client.collection_exists(name):
                return
            vectors: Any = (
                {} if dim is None else models.VectorParams(size=dim, distance=_DISTANCES[distance])
            )
            await self.client.create_collection(name, vectors_config=vectors)
            self._dims[name] = dim
            if self._on_disk:
                _tune_local(self.client, self._tuned)
            if self.server:
                for key, kind in indexed.items():
                    await self.client.create_payload_index(name, key, _SCHEMAS[kind], wait=True)

    async def dimension(self, name: str) -> int | None:
        if name in self._dims:
            return self._dims[name]
        try:
            info = await self.client.get_collection(name)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        params = info.config.params.vectors
        dim = params.size if isinstance(params, models.VectorParams) else None
        self._dims[name] = dim
        return dim

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        if not points:
            return
        dim = await self.dimension(name)
        if dim is not None:
            check_dimensions(points, dim)
        if self._on_disk:
            _tune_local(self.client, self._tuned)  # collections loaded from disk
        structs = [
            models.PointStruct(id=p.id, vector=_vector(p), payload=p.payload) for p in points
        ]
        await self.client.upsert(name, points=structs, wait=True)

    async def search(
        self,
        name: str,
        vector: list[float],
        k: int,
        filter: Filter | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        dim = await self.dimension(name)
        if dim is None:
            return []
        check_dimensions([Point("query", vector)], dim)
        result = await self.client.query_points(
            name,
            query=vector,
            limit=k,
            query_filter=qdrant_filter(filter),
            score_threshold=threshold,
            with_payload=True,
        )
        return [Hit(str(p.id), p.score, dict(p.payload or {})) for p in result.points]

    async def get(self, name: str, ids: Sequence[str]) -> list[Point]:
        try:
            records = await self.client.retrieve(name, ids=list(ids), with_payload=True)
        except Exception as exc:
            if _missing(exc):
                return []
            raise
        return [Point(str(r.id), None, dict(r.payload or {})) for r in records]

    async def scroll(self, name: str, filter: Filter | None, limit: int) -> list[Point]:
        try:
            records, _ = await self.client.scroll(
                name, scroll_filter=qdrant_filter(filter), limit=limit, with_payload=True
            )
        except Exception as exc:
            if _missing(exc):
                return []
            raise
        return [Point(str(r.id), None, dict(r.payload or {})) for r in records]

    async def delete(
        self, name: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        selector: Any
        if ids is not None and not ids:
            return  # Qdrant refuses an empty selection
        if ids is not None:
            selector = models.PointIdsList(points=list(ids))
        elif filter is not None:
            selector = models.FilterSelector(filter=qdrant_filter(filter))
        else:
            raise ValueError("delete needs ids or a filter")
        try:
            await self.client.delete(name, points_selector=selector, wait=True)
        except Exception as exc:
            if not _missing(exc):
                raise

    async def drop(self, name: str) -> None:
        self._dims.pop(name, None)
        await self.client.delete_collection(name)

    async def count(self, name: str, filter: Filter | None = None) -> int:
        try:
            result = await self.client.count(name, count_filter=qdrant_filter(filter), exact=True)
        except Exception as exc:
            if _missing(exc):
                return 0
            raise
        return result.count

    async def ping(self) -> None:
        await self.client.get_collections()

    async def aclose(self) -> None:
        await self.client.close()
