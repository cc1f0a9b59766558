"""The stored form of a response-cache entry: the answer in the form it was produced in,
and the answering deployment, as compact JSON tagged with :data:`~.keys.KEY_VERSION`.

A streamed call is stored as its ordered ``chat.completion.chunk`` list, a non-stream call
as its ``chat.completion``: a request of the same kind gets the answer back unchanged (a
miss answers exactly as the hits that replay its entry), a request of the other kind gets
it converted (:mod:`.chunks`).

Entry formats (``"f"``; the key version ``"v"`` stays, so entries already stored still
load, and no key changes):

* 1 (no ``"f"``): ``{"v": 1, "chunks": [...], "meta": {...}}``, every entry before
  completions were stored as such;
* 2: ``{"v": 1, "f": 2, "chunks": [...] | "completion": {...}, "meta": {...}}``. An
  instance still running format 1 reads format-2 chunk entries and ignores completion
  entries (a miss, then stored again in its own format): a rolling deploy costs misses,
  never errors.

The round trips of an entry are here too: :func:`read_entry` (a fail-open backend's outage
is raised, not taken for a miss), :func:`entry_from` (an unreadable value is logged and
reads as a miss) and :func:`store_entry` (entry, lease release and usage charges in one
round trip; a failure is logged, never raised).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from ...cache import batch
from ...cache.base import Consume, StateBackend
from ...cache.failopen import FailOpenBackend
from .keys import KEY_VERSION

__all__ = [
    "ENTRY_FORMAT",
    "Entry",
    "decode_entry",
    "encode_entry",
    "entry_from",
    "read_entry",
    "store_entry",
]

log = logging.getLogger("aiservice.cache")

Chunk = dict[str, Any]

ENTRY_FORMAT = 2
"""Written by :func:`encode_entry`; :func:`decode_entry` reads this one and every older one."""


class Entry(NamedTuple):
    """One cached answer: exactly one of ``chunks`` (streamed) and ``completion`` (not)."""

    chunks: list[Chunk] | None
    meta: dict[str, str]
    completion: Chunk | None = None


def encode_entry(entry: Entry) -> bytes:
    data: dict[str, Any] = {"v": KEY_VERSION, "f": ENTRY_FORMAT}
    if entry.completion is not None:
        data["completion"] = entry.completion
    else:
        data["chunks"] = entry.chunks
    data["meta"] = entry.meta
    return json.dumps(data, separators=(",", ":")).encode()


def decode_entry(raw: bytes) -> Entry | None:
    """The entry, or ``None`` for one this code cannot read (another key version, a newer
    entry format, a damaged value): the caller treats it as a miss."""
    try:
        data = json.loads(raw)
        if data.get("v") != KEY_VERSION:
            return None
        form = data.get("f", 1)
        meta = data.get("meta") or {}
        if form == 1 or (form == ENTRY_FORMAT and "chunks" in data):
            chunks, completion = data["chunks"], None
        elif form == ENTRY_FORMAT:
            chunks, completion = None, data["completion"]
        else:
            return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(meta, dict):
        return None
    if chunks is not None:
        return Entry(chunks, meta) if isinstance(chunks, list) and chunks else None
    return Entry(None, meta, completion) if isinstance(completion, dict) and completion else None


# -- round trips ---------------------------------------------------------------------------


async def read_entry(backend: StateBackend, key: str) -> Entry | None:
    """The entry stored at ``key``, or ``None`` (none, or one this code cannot read).

    Raises :class:`~aiservice.cache.failopen.StateUnavailableError` when a fail-open backend
    could not answer, so the caller can tell an outage from a miss.
    """
    if isinstance(backend, FailOpenBackend):
        raw = await backend.checked_get(key)
    else:
        raw = await backend.get(key)
    return entry_from(raw)


def entry_from(raw: bytes | None) -> Entry | None:
    """:func:`decode_entry` of a value read, logging one that cannot be read."""
    if raw is None:
        return None
    entry = decode_entry(raw)
    if entry is None:
        log.warning("ignoring an unreadable cache entry (format changed?)")
    return entry


async def store_entry(
    backend: StateBackend,
    key: str,
    entry: Entry | None,
    ttl: float,
    *,
    release: str | None = None,
    charge: Sequence[Consume] = (),
) -> None:
    """Entry, lease release and usage charges in one round trip (:func:`~aiservice.cache.
    batch.store`); an empty entry is not stored. A failure is logged, never raised: the
    answer is served all the same."""
    value = encode_entry(entry) if entry and (entry.chunks or entry.completion) else None
    if value is None and release is None and not charge:
        return
    try:
        await batch.store(backend, key, value, ttl, release=release, charge=charge)
    except Exception as exc:  # a raw backend: the answer is served all the same
        log.warning("could not store the cache entry: %s", type(exc).__name__)
