"""Cache keys: SHA-256 over a canonical JSON of everything that changes the answer.

The key covers the resolved deployment (provider + upstream model, not the alias the
client used), the whole request body except fields that cannot change the answer
(``stream``, ``stream_options``, ``user``, ``metadata``, ...), a namespace and
:data:`KEY_VERSION`. Unknown request fields are *included*, so a new sampling or reasoning
parameter can never make two different requests share an entry. The raw payload is never
the key: keys are fixed-length and reveal nothing about prompts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "IGNORED_FIELDS",
    "KEY_VERSION",
    "canonical_json",
    "chat_key",
    "embedding_key",
    "lease_key",
]

KEY_VERSION = 1
"""Bump when the entry format or the canonicalisation changes: old entries stop matching."""

IGNORED_FIELDS = frozenset(
    {"model", "stream", "stream_options", "user", "metadata", "store", "service_tier"}
)
"""Request fields that never change the generated answer (``model`` is replaced by the
resolved deployment)."""

# Synonyms normalised to one spelling so both requests share an entry.
_RENAMED = {"max_completion_tokens": "max_tokens"}


def _normalise(value: Any) -> Any:
    # 1 and 1.0 are the same temperature; JSON would spell them differently.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, integral floats as integers, UTF-8."""
    text = json.dumps(
        _normalise(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return text.encode("utf-8")


def _digest(kind: str, namespace: str, body: Any) -> str:
    payload = {"v": KEY_VERSION, "kind": kind, "ns": namespace, "body": body}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def chat_key(provider: str, model: str, request: Mapping[str, Any], namespace: str = "") -> str:
    """The cache key of a chat completion answered by ``provider``/``model``."""
    body: dict[str, Any] = {}
    for name, value in request.items():
        if name in IGNORED_FIELDS or value is None:
            continue
        body[_RENAMED.get(name, name)] = value
    return "llm:" + _digest("chat", namespace, {"provider": provider, "model": model, **body})


def embedding_key(
    provider: str, model: str, text: str, dimensions: int | None, namespace: str = ""
) -> str:
    """The cache key of one embedding input (items are cached one by one)."""
    body = {"provider": provider, "model": model, "input": text, "dimensions": dimensions}
    return "emb:" + _digest("embedding", namespace, body)


def lease_key(key: str) -> str:
    """The cross-instance lease guarding the upstream call for ``key``."""
    return "lease:" + key
