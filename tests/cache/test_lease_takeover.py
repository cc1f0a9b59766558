"""Orphaned-lease takeover (:mod:`aiservice.llm.cache.leases`): re-armed by compare-and-set,
so only a lease that still holds this instance's id is taken over."""

from __future__ import annotations

from aiservice.cache.memory import MemoryBackend
from aiservice.config import Settings
from aiservice.llm.cache.keys import lease_key
from aiservice.llm.cache.leases import Leases

KEY = "llm:abc"
ME, OTHER = b"this-instance", b"other-instance"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_entry(key: str) -> None:
    return None


def leases(backend: MemoryBackend, wait: float = 5.0) -> Leases[None]:
    return Leases(backend, ME, lease_seconds=30, wait_seconds=wait, lookup=_no_entry)


async def test_this_instances_orphan_is_rearmed_at_once() -> None:
    clock = Clock()
    backend = MemoryBackend(Settings(cache={"namespace": "t"}), clock=clock)
    await backend.add(lease_key(KEY), ME, 5)  # left by a flight whose store was lost
    assert await leases(backend).acquire_or_wait(KEY) is True
    clock.now += 10  # past the orphan's 5 s: the takeover gave it the full 30 s again
    assert await backend.get(lease_key(KEY)) == ME


async def test_another_instances_lease_is_waited_on_not_taken() -> None:
    backend = MemoryBackend(Settings(cache={"namespace": "t"}))
    await backend.add(lease_key(KEY), OTHER, 30)
    assert await leases(backend, wait=0.2).acquire_or_wait(KEY) is False
    assert await backend.get(lease_key(KEY)) == OTHER


class Handover(MemoryBackend):
    """Between this instance's failed ``add`` and its takeover, its orphan expires and
    another instance takes the lease; the takeover must leave that lease alone (the
    atomicity of the compare-and-set itself is pinned by the backend contract)."""

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        taken = await super().add(key, value, ttl)
        if not taken and await self.get(key) == ME:
            await self.set(key, OTHER, 30)
        return taken


async def test_a_lease_another_instance_took_meanwhile_is_left_alone() -> None:
    backend = Handover(Settings(cache={"namespace": "t"}))
    await backend.add(lease_key(KEY), ME, 30)
    assert await leases(backend, wait=0.2).acquire_or_wait(KEY) is False
    assert await backend.get(lease_key(KEY)) == OTHER
