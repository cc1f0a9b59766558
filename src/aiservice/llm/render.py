"""Serialising what the gateway computed, without stalling the event loop.

An embeddings answer can hold millions of floats (bounded by
``limits.requests.max_embedding_values``); turning them into JSON or base64 is CPU work
measured in hundreds of milliseconds. Above :data:`THREAD_VALUES` it runs in a worker
thread, one vector at a time: the Python loop between vectors lets the thread give up the
GIL, so health probes and other requests keep being served meanwhile. Small answers are
encoded inline, where a thread hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UpstreamError

__all__ = ["THREAD_VALUES", "embeddings_body", "float32_base64"]

THREAD_VALUES = 65_536


def float32_base64(vector: Sequence[float]) -> str:
    # What the official SDKs decode: little-endian float32.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _encode(
    vectors: Sequence[Sequence[float]],
    as_base64: bool,
    envelope: Mapping[str, Any],
) -> bytes:
    parts: list[str] = []
    for index, vector in enumerate(vectors):
        if as_base64:
            value = '"' + float32_base64(vector) + '"'
        else:
            value = json.dumps(vector, allow_nan=False, separators=(",", ":"))
        parts.append(f'{{"object":"embedding","index":{index},"embedding":{value}}}')
    # ensure_ascii: a field echoed from the request can never fail to encode.
    head = json.dumps({"object": "list"}, separators=(",", ":"))[:-1]
    tail = json.dumps(dict(envelope), separators=(",", ":"))[1:]
    return f'{head},"data":[{",".join(parts)}],{tail}'.encode()


async def embeddings_body(
    vectors: Sequence[Sequence[float]],
    *,
    as_base64: bool,
    model: str,
    usage: Mapping[str, int],
) -> bytes:
    """The ``/v1/embeddings`` JSON body (``object``, ``data``, ``model``, ``usage``).

    Raises :class:`~aiservice.errors.UpstreamError` (502) for a non-finite value, which
    JSON cannot carry and only a faulty upstream produces.
    """
    envelope = {"model": model, "usage": dict(usage)}
    values = sum(len(v) for v in vectors)
    try:
        if values > THREAD_VALUES:
            return await asyncio.to_thread(_encode, vectors, as_base64, envelope)
        return _encode(vectors, as_base64, envelope)
    except (ValueError, OverflowError, struct.error) as exc:
        raise UpstreamError(
            "the embedding model returned a value that is not a finite number",
            code="upstream_invalid_answer",
        ) from exc
