"""The stored form of a response-cache entry: the ordered ``chat.completion.chunk`` list
and the answering deployment, as compact JSON tagged with :data:`~.keys.KEY_VERSION`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .keys import KEY_VERSION

__all__ = ["Entry", "decode_entry", "encode_entry"]

Chunk = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    chunks: list[Chunk]
    meta: dict[str, str]


def encode_entry(chunks: list[Chunk], meta: dict[str, str]) -> bytes:
    entry = {"v": KEY_VERSION, "chunks": chunks, "meta": meta}
    return json.dumps(entry, separators=(",", ":")).encode()


def decode_entry(raw: bytes) -> Entry | None:
    try:
        data = json.loads(raw)
        if data.get("v") != KEY_VERSION:
            return None
        chunks, meta = data["chunks"], data.get("meta") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(chunks, list) or not chunks or not isinstance(meta, dict):
        return None
    return Entry(chunks, meta)
