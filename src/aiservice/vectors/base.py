"""The vector backend protocol, its value types and the lazy backend registry.

A backend stores *collections* of points (an id, an optional vector, a JSON payload) and
answers nearest-neighbour searches with payload filters. The service keeps two kinds of
collection in it: one per vector store (the chunks, with vectors) and one metadata
collection without vectors (stores, files, attach statuses), so metadata lives exactly as
long and as shared as the vectors it describes.

Filters are backend-neutral (:class:`Comparison`, :class:`Compound`, built from OpenAI's
``filters`` by :mod:`aiservice.vectors.filters`); each backend translates them with a pure
function. Errors a client caused (a vector of the wrong dimension) raise
:class:`DimensionError` (400) *before* anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import InvalidRequestError
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = [
    "BACKENDS",
    "BackendFactory",
    "Comparison",
    "Compound",
    "DimensionError",
    "Distance",
    "Filter",
    "Hit",
    "Point",
    "VectorBackend",
    "check_dimensions",
]

Distance = Literal["cosine", "dot", "euclid"]
AttributeType = Literal["keyword", "integer", "float", "bool"]
Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Point:
    id: str
    """A UUID string (Qdrant accepts UUIDs and integers; derive ids with ``uuid5``)."""
    vector: list[float] | None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Comparison:
    key: str
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    value: Scalar | list[Scalar]


@dataclass(frozen=True, slots=True)
class Compound:
    op: Literal["and", "or"]
    filters: tuple[Filter, ...]


Filter = Comparison | Compound


class DimensionError(InvalidRequestError):
    """A vector whose length is not the collection's dimension (400)."""


def check_dimensions(points: Sequence[Point], dim: int) -> None:
    """Raise :class:`DimensionError` naming the first point whose vector is not ``dim`` long."""
    for point in points:
        if point.vector is not None and len(point.vector) != dim:
            raise DimensionError(
                f"vector of point {point.id} has {len(point.vector)} dimensions, "
                f"the collection has {dim}",
                code="dimension_mismatch",
                param="vector",
            )


class VectorBackend(Protocol):
    """Collections of points. Every method is safe to call concurrently."""

    name: str

    async def ensure_collection(
        self,
        name: str,
        dim: int | None,
        distance: Distance,
        indexed: dict[str, AttributeType],
    ) -> None:
        """Create ``name`` unless it exists. ``dim=None``: points carry no vector (metadata).

        ``indexed`` names the payload keys filters use, indexed where the backend can.
        """
        ...

    async def dimension(self, name: str) -> int | None:
        """The collection's vector size; ``None`` if it has no vectors or does not exist."""
        ...

    async def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Insert or replace by id. All vectors are checked first: nothing is written if any
        has the wrong dimension (:class:`DimensionError`)."""
        ...

    async def search(
        self,
        name: str,
        vector: list[float],
        k: int,
        filter: Filter | None = None,
        threshold: float | None = None,
    ) -> list[Hit]:
        """The ``k`` nearest points (best first) matching ``filter``, scoring at least
        ``threshold`` (higher is closer for every distance)."""
        ...

    async def get(self, name: str, ids: Sequence[str]) -> list[Point]:
        """The points that exist among ``ids`` (without vectors)."""
        ...

    async def scroll(self, name: str, filter: Filter | None, limit: int) -> list[Point]:
        """Up to ``limit`` points matching ``filter`` (without vectors), in id order."""
        ...

    async def delete(
        self, name: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        """Delete the given ids, or every point matching ``filter``."""
        ...

    async def drop(self, name: str) -> None:
        """Delete the collection (no error if it does not exist)."""
        ...

    async def count(self, name: str, filter: Filter | None = None) -> int: ...

    async def ping(self) -> None:
        """Raise if the backend is unreachable (readiness check)."""
        ...

    async def aclose(self) -> None: ...


BackendFactory = Callable[["Settings", "SecretResolver"], VectorBackend]
"""``factory(settings, secrets)``: backends read ``settings.vectors``."""

BACKENDS: Registry[BackendFactory] = Registry("vector backend", group="aiservice.vectors")
BACKENDS.register(
    "qdrant", "aiservice.vectors.qdrant:QdrantBackend", "pip install 'aiservice[qdrant]'"
)
