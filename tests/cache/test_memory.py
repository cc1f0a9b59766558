"""The memory backend: the contract, plus its LRU bounds by entries and by bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aiservice.cache.memory import MemoryBackend
from aiservice.config import Settings

from .contract import Advance, MakeBackend, StateBackendContract


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def memory(clock: FakeClock, namespace: str = "t", **cache: object) -> MemoryBackend:
    return MemoryBackend(Settings(cache={"namespace": namespace, **cache}), clock=clock)


class TestMemoryContract(StateBackendContract):
    @pytest.fixture
    def make_backend(self, clock: FakeClock) -> Iterator[MakeBackend]:
        # Namespaces only isolate within one store: share it like a real server would.
        store = memory(clock)

        def make(namespace: str) -> MemoryBackend:
            backend = memory(clock, namespace)
            backend._data, backend._lock = store._data, store._lock
            return backend

        yield make

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        async def advance(seconds: float) -> None:
            clock.now += seconds

        return advance


async def test_entry_bound_evicts_least_recently_used(clock: FakeClock) -> None:
    backend = memory(clock, max_entries=3)
    for key in ("a", "b", "c"):
        await backend.set(key, b"v")
    assert await backend.get("a") == b"v"  # a is now the most recently used
    await backend.set("d", b"v")
    assert await backend.get("b") is None
    assert [await backend.get(k) for k in ("a", "c", "d")] == [b"v"] * 3
    assert backend.entries == 3


async def test_byte_bound_evicts_until_under_budget(clock: FakeClock) -> None:
    backend = memory(clock, max_bytes=1000)
    for i in range(10):
        await backend.set(f"k{i}", b"x" * 200)
    assert backend.size_bytes <= 1000
    assert await backend.get("k9") == b"x" * 200
    assert await backend.get("k0") is None


async def test_value_larger_than_the_cache_is_not_stored(clock: FakeClock) -> None:
    backend = memory(clock, max_bytes=500)
    await backend.set("small", b"s")
    await backend.set("huge", b"x" * 1000)
    assert await backend.get("huge") is None
    assert await backend.get("small") == b"s"  # nothing evicted for it


async def test_default_ttl_comes_from_settings(clock: FakeClock) -> None:
    backend = memory(clock, ttl=10)
    await backend.set("k", b"v")
    clock.now += 9
    assert await backend.get("k") == b"v"
    clock.now += 2
    assert await backend.get("k") is None
