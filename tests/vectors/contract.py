"""The contract every vector backend passes (subclass :class:`VectorBackendContract`).

A subclass provides the fixture ``backend``: a fresh backend; collection names are unique
per test (``collection``) and dropped afterwards, so a shared server stays clean.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from aiservice.vectors.base import (
    Comparison,
    Compound,
    DimensionError,
    Point,
    VectorBackend,
)


def pid(n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"contract/{n}"))


POINTS = [
    Point(pid(1), [1.0, 0.0, 0.0], {"color": "red", "size": 1, "text": "one"}),
    Point(pid(2), [0.0, 1.0, 0.0], {"color": "blue", "size": 2, "text": "two"}),
    Point(pid(3), [0.7, 0.7, 0.0], {"color": "red", "size": 3, "text": "three"}),
]
INDEXED = {"color": "keyword", "size": "integer"}


class VectorBackendContract:
    @pytest.fixture
    async def collection(self, backend: VectorBackend) -> AsyncIterator[str]:
        name = f"contract_{uuid.uuid4().hex[:12]}"
        yield name
        await backend.drop(name)

    @pytest.fixture
    async def filled(self, backend: VectorBackend, collection: str) -> str:
        await backend.ensure_collection(collection, 3, "cosine", dict(INDEXED))
        await backend.upsert(collection, POINTS)
        return collection

    async def test_ensure_collection_is_idempotent(
        self, backend: VectorBackend, collection: str
    ) -> None:
        assert await backend.dimension(collection) is None
        await backend.ensure_collection(collection, 3, "cosine", dict(INDEXED))
        await backend.ensure_collection(collection, 3, "cosine", dict(INDEXED))
        assert await backend.dimension(collection) == 3
        assert await backend.count(collection) == 0

    async def test_search_returns_nearest_first(self, backend: VectorBackend, filled: str) -> None:
        hits = await backend.search(filled, [1.0, 0.1, 0.0], 3)
        assert [h.id for h in hits] == [pid(1), pid(3), pid(2)]
        assert hits[0].payload["text"] == "one"
        assert hits[0].score >= hits[1].score >= hits[2].score

    async def test_threshold_and_k(self, backend: VectorBackend, filled: str) -> None:
        assert len(await backend.search(filled, [1.0, 0.0, 0.0], 1)) == 1
        hits = await backend.search(filled, [1.0, 0.0, 0.0], 3, threshold=0.5)
        assert {h.id for h in hits} == {pid(1), pid(3)}

    async def test_filters(self, backend: VectorBackend, filled: str) -> None:
        async def ids(f: Comparison | Compound) -> set[str]:
            return {h.id for h in await backend.search(filled, [1.0, 1.0, 1.0], 10, f)}

        assert await ids(Comparison("color", "eq", "red")) == {pid(1), pid(3)}
        assert await ids(Comparison("color", "ne", "red")) == {pid(2)}
        assert await ids(Comparison("size", "gte", 2)) == {pid(2), pid(3)}
        assert await ids(Comparison("size", "lt", 2)) == {pid(1)}
        assert await ids(Comparison("color", "in", ["blue", "green"])) == {pid(2)}
        assert await ids(Comparison("color", "nin", ["blue"])) == {pid(1), pid(3)}
        both = Compound("and", (Comparison("color", "eq", "red"), Comparison("size", "gt", 1)))
        assert await ids(both) == {pid(3)}
        either = Compound("or", (Comparison("size", "eq", 1), Comparison("size", "eq", 2)))
        assert await ids(either) == {pid(1), pid(2)}

    async def test_upsert_replaces_by_id(self, backend: VectorBackend, filled: str) -> None:
        await backend.upsert(filled, [Point(pid(1), [0.0, 0.0, 1.0], {"text": "new"})])
        assert await backend.count(filled) == 3
        assert [p.payload["text"] for p in await backend.get(filled, [pid(1)])] == ["new"]

    async def test_wrong_dimension_writes_nothing(
        self, backend: VectorBackend, filled: str
    ) -> None:
        batch = [Point(pid(10), [1.0, 0.0, 0.0]), Point(pid(11), [1.0, 0.0])]
        with pytest.raises(DimensionError) as info:
            await backend.upsert(filled, batch)
        assert info.value.status_code == 400 and info.value.code == "dimension_mismatch"
        assert await backend.count(filled) == 3
        with pytest.raises(DimensionError):
            await backend.search(filled, [1.0], 3)

    async def test_delete_by_ids_and_by_filter(self, backend: VectorBackend, filled: str) -> None:
        await backend.delete(filled, ids=[pid(2)])
        assert await backend.count(filled) == 2
        await backend.delete(filled, ids=[])
        assert await backend.count(filled) == 2
        await backend.delete(filled, filter=Comparison("color", "eq", "red"))
        assert await backend.count(filled) == 0

    async def test_count_get_scroll_with_filter(self, backend: VectorBackend, filled: str) -> None:
        red = Comparison("color", "eq", "red")
        assert await backend.count(filled, red) == 2
        assert {p.id for p in await backend.scroll(filled, red, 10)} == {pid(1), pid(3)}
        got = await backend.get(filled, [pid(2), pid(99)])
        assert [(p.id, p.payload["color"]) for p in got] == [(pid(2), "blue")]

    async def test_collections_without_vectors_hold_metadata(
        self, backend: VectorBackend, collection: str
    ) -> None:
        await backend.ensure_collection(collection, None, "cosine", {"kind": "keyword"})
        await backend.upsert(collection, [Point(pid(1), None, {"kind": "store", "n": 1})])
        assert await backend.dimension(collection) is None
        found = await backend.scroll(collection, Comparison("kind", "eq", "store"), 10)
        assert [p.payload["n"] for p in found] == [1]

    async def test_missing_collection_reads_as_empty(
        self, backend: VectorBackend, collection: str
    ) -> None:
        assert await backend.search(collection, [1.0, 0.0, 0.0], 3) == []
        assert await backend.count(collection) == 0
        assert await backend.get(collection, [pid(1)]) == []
        assert await backend.scroll(collection, None, 10) == []
        await backend.delete(collection, ids=[pid(1)])
        await backend.drop(collection)

    async def test_drop_removes_everything(self, backend: VectorBackend, filled: str) -> None:
        await backend.drop(filled)
        assert await backend.count(filled) == 0
        assert await backend.dimension(filled) is None

    async def test_ping(self, backend: VectorBackend) -> None:
        await backend.ping()
