"""The two state operations of a cached LLM request, each one round trip where possible.

A cache miss under rate limits used to cost six backend calls: admission, entry lookup,
lease, usage charge, store, lease release. They group into two moments:

* :func:`lookup` before the upstream call: admit the request (rate limits), read the entry
  and, when it is absent, take the coalescing lease. Nothing is read or leased when the
  admission is refused.
* :func:`store` after it: write the entry, release the lease, charge the usage.

A backend may implement either as a method of the same name (Redis: one Lua script
each); otherwise they are composed from the :class:`~aiservice.cache.base.StateBackend`
calls, with the same results.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .base import Consume, ConsumeResult, StateBackend

__all__ = ["Lease", "Lookup", "lookup", "store"]


class Lease(NamedTuple):
    key: str
    owner: bytes
    ttl: float


class Lookup(NamedTuple):
    admission: ConsumeResult | None
    """The result of the admission (``None``: nothing to admit)."""
    value: bytes | None
    """The entry (``None``: absent, or the admission was refused)."""
    leased: bool
    """Whether this call took the lease."""


async def lookup(
    backend: StateBackend, key: str, *, lease: Lease | None, admit: Sequence[Consume] = ()
) -> Lookup:
    """Admit (if ``admit``), then read ``key`` and, if absent, take ``lease`` (if given)."""
    native: Callable[..., Awaitable[Lookup]] | None = getattr(backend, "lookup", None)
    if native is not None:
        return await native(key, lease=lease, admit=admit)
    admission = None
    if admit:
        admission = await backend.consume(admit)
        if not admission.allowed:
            return Lookup(admission, None, False)
    value = await backend.get(key)
    leased = False
    if value is None and lease is not None:
        leased = await backend.add(lease.key, lease.owner, lease.ttl)
    return Lookup(admission, value, leased)


async def store(
    backend: StateBackend,
    key: str,
    value: bytes | None,
    ttl: float | None,
    *,
    release: str | None = None,
    charge: Sequence[Consume] = (),
) -> None:
    """Write ``value`` (unless ``None``), delete ``release``, charge ``charge`` (no limits)."""
    native: Callable[..., Awaitable[None]] | None = getattr(backend, "store", None)
    if native is not None:
        await native(key, value, ttl, release=release, charge=charge)
        return
    if value is not None:
        await backend.set(key, value, ttl)
    if release is not None:
        await backend.delete(release)
    if charge:
        await backend.consume(charge)
