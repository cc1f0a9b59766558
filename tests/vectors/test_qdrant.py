"""Qdrant passes the vector backend contract: embedded in memory, on disk, and a server
when ``AISERVICE_TEST_QDRANT_URL`` names one (see tests/vectors/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiservice import Settings
from aiservice.vectors.base import Comparison, Compound, VectorBackend
from aiservice.vectors.qdrant import QdrantBackend, qdrant_filter

from .conftest import qdrant_config
from .contract import VectorBackendContract


def _settings(**vectors: object) -> Settings:
    return Settings(vectors={**vectors, "embedding_model": "embed"})


class TestQdrantDefaultMode(VectorBackendContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[VectorBackend]:
        backend = QdrantBackend(_settings(**qdrant_config()))
        yield backend
        await backend.aclose()


class TestQdrantOnDisk(VectorBackendContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[VectorBackend]:
        backend = QdrantBackend(_settings(backend="qdrant", location=str(tmp_path / "q")))
        yield backend
        await backend.aclose()


async def test_points_on_disk_survive_a_new_client(tmp_path: Path) -> None:
    from aiservice.vectors.base import Point

    settings = _settings(backend="qdrant", location=str(tmp_path / "q"))
    first = QdrantBackend(settings)
    await first.ensure_collection("c", 2, "cosine", {})
    await first.upsert("c", [Point("00000000-0000-0000-0000-000000000001", [1.0, 0.0])])
    await first.aclose()
    second = QdrantBackend(settings)
    assert await second.count("c") == 1 and await second.dimension("c") == 2
    await second.aclose()


def test_filter_translation_is_pure() -> None:
    f = Compound("or", (Comparison("a", "ne", "x"), Compound("and", (Comparison("n", "gt", 2),))))
    out = qdrant_filter(f)
    assert out is not None and out.should is not None and len(out.should) == 2
    assert qdrant_filter(None) is None
    assert qdrant_filter(Comparison("f", "eq", 1.5)).must[0].range.gte == 1.5  # type: ignore[index,union-attr]
