"""Whether a store's collection holds any point, so a search on an empty store answers
its empty page without embedding the query (an upstream call, and tokens charged to the
caller, for nothing).

A collection seen holding points is remembered for the process: a search on a store in
use costs no extra round trip to the backend, only the first one does (a ``count``). The
memory errs one way only: a store emptied by another process (every file detached) is
still taken as filled here, and its search embeds the query and finds nothing, as it
did before this check. Stores emptied or dropped by this process are forgotten at once.
"""

from __future__ import annotations

from .base import VectorBackend

__all__ = ["Occupancy"]

_MAX_REMEMBERED = 10_000
"""Bound on the remembered collections (one per store); past it, stores are counted again."""


class Occupancy:
    """The collections known to hold points, checked with ``count`` when not known."""

    def __init__(self, backend: VectorBackend) -> None:
        self._backend = backend
        self._filled: set[str] = set()

    async def empty(self, collection: str) -> bool:
        """True if ``collection`` holds no point (or does not exist yet)."""
        if collection in self._filled:
            return False
        if await self._backend.count(collection) == 0:
            return True
        self.filled(collection)
        return False

    def filled(self, collection: str) -> None:
        """Points were written to ``collection``."""
        if len(self._filled) >= _MAX_REMEMBERED:
            self._filled.clear()
        self._filled.add(collection)

    def forget(self, collection: str) -> None:
        """Points were deleted from ``collection`` (or it was dropped): count it again."""
        self._filled.discard(collection)
