"""Lease renewal on a state backend without a built-in atomic script (a plugin backend):
compare-and-set, then add, never a blind write over another worker's lease."""

from __future__ import annotations

from typing import Any

from aiservice.cache.memory import MemoryBackend
from aiservice.orchestrator.store import ExecutionStore, _atomic


class PluginBackend:
    """A backend the orchestrator has no script for: the memory backend under another name,
    with a hook between a renewal's steps."""

    name = "plugin"

    def __init__(self, inner: MemoryBackend) -> None:
        self._inner = inner

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)


def _store(make_settings: Any) -> tuple[ExecutionStore, MemoryBackend, list[float]]:
    now = [0.0]
    memory = MemoryBackend(make_settings({}), clock=lambda: now[0])
    store = ExecutionStore(PluginBackend(memory), ttl=60)  # type: ignore[arg-type]
    assert _atomic(store.backend, "renew") is None  # the fallback under test
    return store, memory, now


async def test_renewal_extends_only_its_own_lease(make_settings: Any) -> None:
    store, memory, now = _store(make_settings)
    assert await store.acquire_lease("e1", "worker-a", 1.0)
    now[0] = 0.9
    assert await store.renew_lease("e1", "worker-a", 1.0)
    now[0] = 1.5  # past the first lease, within the renewed one
    assert await store.lease_holder("e1") == "worker-a"
    assert not await store.renew_lease("e1", "worker-b", 1.0)
    assert await store.lease_holder("e1") == "worker-a"


async def test_a_lapsed_lease_nobody_took_is_taken_back(make_settings: Any) -> None:
    store, memory, now = _store(make_settings)
    assert await store.acquire_lease("e1", "worker-a", 1.0)
    now[0] = 5.0  # lapsed
    assert await store.lease_holder("e1") is None
    assert await store.renew_lease("e1", "worker-a", 1.0)
    assert await store.lease_holder("e1") == "worker-a"


async def test_a_lease_taken_over_after_it_lapsed_is_not_overwritten(make_settings: Any) -> None:
    store, memory, now = _store(make_settings)
    assert await store.acquire_lease("e1", "worker-a", 1.0)
    now[0] = 5.0
    assert await store.acquire_lease("e1", "worker-b", 1.0)  # b took it over
    assert not await store.renew_lease("e1", "worker-a", 1.0)
    assert await store.lease_holder("e1") == "worker-b"


async def test_a_takeover_during_a_renewal_is_not_overwritten(make_settings: Any) -> None:
    """The race a read-then-write renewal loses: the lease lapses, worker b takes it over
    while worker a renews. Whichever steps a's renewal takes, b keeps the lease."""
    store, memory, now = _store(make_settings)
    assert await store.acquire_lease("e1", "worker-a", 1.0)
    now[0] = 5.0  # lapsed
    backend: Any = store.backend
    name = "orch:lease:e1"

    async def b_takes_over() -> None:
        assert await memory.add(name, b"worker-b", 1.0)

    async def racing_get(key: str) -> bytes | None:  # a read, then b's takeover
        value = await memory.get(key)
        await b_takes_over()
        return value

    async def racing_cas(key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        stored = await memory.compare_and_set(key, expected, value, ttl)
        await b_takes_over()  # between the compare-and-set and the add
        return stored

    backend.get, backend.compare_and_set = racing_get, racing_cas
    assert not await store.renew_lease("e1", "worker-a", 1.0)
    assert await memory.get(name) == b"worker-b"
