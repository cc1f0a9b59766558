"""The cross-instance lease on one key's upstream call, and the wait for its holder's entry.

A request that finds no entry takes the lease (``add``) and calls upstream; one that
finds the lease held polls for the holder's entry for up to ``cache.wait_ms``. Requests
in one instance never wait for each other here: they join the instance's flight. So a
lease that holds this instance's own id while no flight of this instance is storing
under it is an orphan: a flight whose entry and release were lost (written while the
backend was in its fail-open cool-down, or to a Redis that restarted in between). Nobody
will ever answer it, and waiting would cost every later request for that key the whole
``wait_ms`` until the lease expires; it is taken over at once instead.

A flight still storing (its readers answered, its entry and release in flight) is
waited for in-process, and the entry it stored is answered, not called for again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from ...cache.base import StateBackend
from .keys import lease_key

__all__ = ["Leases"]

log = logging.getLogger("aiservice.cache")

E = TypeVar("E")


class Leases(Generic[E]):
    """Lease taking and waiting for one instance (``instance``: its id, the lease value)."""

    def __init__(
        self,
        backend: StateBackend,
        instance: bytes,
        lease_seconds: float,
        wait_seconds: float,
        lookup: Callable[[str], Awaitable[E | None]],
    ) -> None:
        self.backend = backend
        self.instance = instance
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self._lookup = lookup
        self._storing: dict[str, asyncio.Event] = {}

    @contextlib.contextmanager
    def storing(self, key: str) -> Iterator[None]:
        """Around a flight's store of its entry (and release of its lease)."""
        done = self._storing[key] = asyncio.Event()
        try:
            yield
        finally:
            done.set()
            if self._storing.get(key) is done:
                del self._storing[key]

    async def acquire_or_wait(self, key: str) -> bool | E:
        """``True``: lease taken, call upstream; ``False``: waited ``wait_ms``, call upstream
        without it; an entry: the lease holder's answer arrived."""
        lease = lease_key(key)
        deadline = time.monotonic() + self.wait_seconds
        pending = self._storing.get(key)
        if pending is not None:  # this instance's last flight for the key is storing
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    await pending.wait()
            found = await self._lookup(key)
            if found is not None:
                return found
        if await self.backend.add(lease, self.instance, self.lease_seconds):
            return True
        if await self._take_orphan(lease):
            return True
        delay = 0.01
        while True:
            if time.monotonic() >= deadline:
                log.info("coalescing wait timed out; calling upstream without the lease")
                return False
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 1.5, 0.2)
            found = await self._lookup(key)
            if found is not None:
                return found
            if await self.backend.add(lease, self.instance, self.lease_seconds):
                return True

    async def _take_orphan(self, lease: str) -> bool:
        """Re-arm a lease holding this instance's id: no flight of ours is using it (one
        would have been joined, or waited for above), so its holder is gone.

        Compare-and-set, not a read then a write: the orphan may expire between the two
        and another instance take the lease, which a plain write would overwrite (two
        upstream calls, and the other instance's release deleting ours)."""
        if not await self.backend.compare_and_set(
            lease, self.instance, self.instance, self.lease_seconds
        ):
            return False
        log.info("took over this instance's orphaned cache lease")
        return True
