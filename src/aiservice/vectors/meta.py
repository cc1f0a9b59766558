"""Metadata of files, vector stores and attached files, kept in the vector backend.

Why there and not in the shared state (``runtime.state``): the metadata must live exactly
as long and be shared exactly as widely as the vectors it describes (an embedded Qdrant
on disk keeps both across restarts; a Qdrant server shares both between replicas), the
state backend is fail-open (a record silently not written would orphan vectors), and the
routes list stores and files, which a key-value protocol cannot do.

Records are payloads of points without vectors in one collection, ``<prefix>meta``, with
deterministic ids (``uuid5`` of the kind and the public id), so a rewrite replaces. The
public objects (OpenAI's ``file``, ``vector_store``, ``vector_store.file``) are built from
them by the pure functions at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from .base import Comparison, Compound, Filter, Hit, Point, VectorBackend

__all__ = [
    "MetaStore",
    "file_object",
    "point_id",
    "search_page",
    "store_file_object",
    "store_object",
]

NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-5e7f-9c0d-1a2b3c4d5e6f")
SCAN_LIMIT = 10_000  # records listed per owner or store; far above OpenAI's page sizes
_INDEXED: dict[str, Any] = {"kind": "keyword", "owner": "keyword", "vector_store_id": "keyword"}


def point_id(*parts: str) -> str:
    """A deterministic point id: the same parts always name the same point."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


class MetaStore:
    def __init__(self, backend: VectorBackend, collection: str) -> None:
        self.backend = backend
        self.collection = collection

    async def ensure(self) -> None:
        await self.backend.ensure_collection(self.collection, None, "cosine", _INDEXED)

    async def put(self, kind: str, key: str, record: dict[str, Any]) -> None:
        payload = {**record, "kind": kind}
        await self.backend.upsert(self.collection, [Point(point_id(kind, key), None, payload)])

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        found = await self.backend.get(self.collection, [point_id(kind, key)])
        return found[0].payload if found else None

    async def delete(self, kind: str, keys: Sequence[str]) -> None:
        await self.backend.delete(self.collection, ids=[point_id(kind, k) for k in keys])

    async def find(self, kind: str, **equal: str) -> list[dict[str, Any]]:
        conditions: list[Filter] = [Comparison("kind", "eq", kind)]
        conditions += [Comparison(k, "eq", v) for k, v in equal.items()]
        points = await self.backend.scroll(
            self.collection, Compound("and", tuple(conditions)), SCAN_LIMIT
        )
        return [p.payload for p in points]


def _public(record: dict[str, Any], *hidden: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("kind", "owner", *hidden)}


def file_object(record: dict[str, Any]) -> dict[str, Any]:
    return {**_public(record), "object": "file", "status": "processed", "expires_at": None}


def store_object(record: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {s: 0 for s in ("in_progress", "completed", "failed", "cancelled")}
    for f in files:
        counts[f["status"]] = counts.get(f["status"], 0) + 1
    counts["total"] = len(files)
    return {
        **_public(record, "dim"),
        "object": "vector_store",
        "usage_bytes": sum(f.get("usage_bytes", 0) for f in files),
        "file_counts": counts,
        "status": "in_progress" if counts["in_progress"] else "completed",
        "expires_after": None,
        "expires_at": None,
    }


def store_file_object(record: dict[str, Any]) -> dict[str, Any]:
    return {**_public(record, "filename", "chunks"), "object": "vector_store.file"}


def search_page(queries: list[str], hits: list[Hit]) -> dict[str, Any]:
    """OpenAI's ``vector_store.search_results.page``, best hit first."""
    data = [
        {
            "file_id": h.payload.get("file_id"),
            "filename": h.payload.get("filename"),
            "score": h.score,
            "attributes": h.payload.get("attributes") or {},
            "content": [{"type": "text", "text": h.payload.get("text", "")}],
        }
        for h in hits
    ]
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": data,
        "has_more": False,
        "next_page": None,
    }
