"""In-process state: an LRU bounded by entries and bytes, with TTLs. The embedded default.

Safe under concurrency: every operation holds one lock for a few dictionary operations and
never awaits while holding it, so it is atomic for coroutines and for threads alike (a
Lambda handler thread and the event loop may share it). Counters (``incr``/``consume``)
live in the same LRU, so they are bounded too.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import Consume, ConsumeResult, check_consume

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["MemoryBackend"]

# Bookkeeping cost charged per entry besides key and value, so that many tiny entries
# cannot exceed max_bytes in practice.
_ENTRY_OVERHEAD = 64


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires: float | None  # monotonic deadline

    def size(self, key: str) -> int:
        return len(key) + len(self.value) + _ENTRY_OVERHEAD


class MemoryBackend:
    """LRU + TTL map. ``clock`` is injectable so tests can move time without sleeping."""

    name = "memory"

    def __init__(
        self,
        settings: Settings,
        secrets: SecretResolver | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        cfg = settings.cache
        self._prefix = f"{cfg.namespace}:"
        self._default_ttl = float(cfg.ttl)
        self._max_entries = cfg.max_entries
        self._max_bytes = cfg.max_bytes
        self._clock = clock
        self._data: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    # -- internals (call with the lock held) --------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= self._clock():
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return entry

    def _remove(self, key: str) -> None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size(key)

    def _store(self, key: str, value: bytes, ttl: float | None) -> None:
        self._remove(key)
        ttl = self._default_ttl if ttl is None else ttl
        entry = _Entry(value, self._clock() + ttl if ttl > 0 else None)
        size = entry.size(key)
        if size > self._max_bytes:
            return  # larger than the whole cache: storing it would evict everything
        self._data[key] = entry
        self._bytes += size
        while len(self._data) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._data))
            self._remove(oldest)

    def _counter(self, key: str) -> int:
        entry = self._live(key)
        return int(entry.value) if entry is not None else 0

    def _bump(self, key: str, amount: int, ttl: float) -> int:
        entry = self._live(key)
        if entry is None:
            self._store(key, str(amount).encode(), ttl)
            return amount
        value = int(entry.value) + amount
        # Keep the original deadline: a counter's window does not slide with each hit.
        entry.value = str(value).encode()
        return value

    # -- StateBackend --------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(self._prefix + key)
            return entry.value if entry is not None else None

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        with self._lock:
            self._store(self._prefix + key, value, ttl)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        full = self._prefix + key
        with self._lock:
            if self._live(full) is not None:
                return False
            self._store(full, value, ttl)
            return full in self._data

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        full = self._prefix + key
        with self._lock:
            entry = self._live(full)
            if entry is None or entry.value != expected:
                return False
            self._store(full, value, ttl)
            return full in self._data

    async def delete(self, key: str) -> None:
        with self._lock:
            self._remove(self._prefix + key)

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        with self._lock:
            return self._bump(self._prefix + key, amount, ttl)

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        keys = [self._prefix + item.key for item in items]
        with self._lock:
            current = [self._counter(k) for k in keys]
            if not check_consume(items, current):
                return ConsumeResult(False, tuple(current))
            values = [
                self._bump(k, item.amount, item.ttl) if item.amount else value
                for k, item, value in zip(keys, items, current, strict=True)
            ]
            return ConsumeResult(True, tuple(values))

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    # -- introspection (tests, metrics) --------------------------------------------------

    # No __len__: an empty backend must not be falsy (``backend or default`` would skip it).
    @property
    def entries(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes
