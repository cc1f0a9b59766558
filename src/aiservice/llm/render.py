"""Serialising what the gateway computed, without stalling the event loop.

An embeddings answer can hold millions of floats (bounded by
``limits.requests.max_embedding_values``); turning them into JSON or base64 is CPU work
measured in hundreds of milliseconds. Above :data:`THREAD_VALUES` it runs on the CPU
worker thread (:mod:`aiservice.cpu`), one vector at a time, so health probes and other
requests keep being served meanwhile. Small answers are
encoded inline, where a thread hop would cost more than the work.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from ..cpu import run_cpu
from ..errors import UpstreamError
from .encode import dumps

__all__ = ["THREAD_CHARS", "THREAD_VALUES", "completion_body", "embeddings_body", "float32_base64"]

THREAD_VALUES = 65_536
THREAD_CHARS = 256 * 1024
"""Characters of message text above which a chat completion is serialised on the CPU
thread (``n`` choices of a long answer make a response of many megabytes)."""


def float32_base64(vector: Sequence[float]) -> str:
    # What the official SDKs decode: little-endian float32.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _encode(
    vectors: Sequence[Sequence[float]],
    as_base64: bool,
    envelope: Mapping[str, Any],
) -> bytes:
    # Bytes pieces joined once: no multi-megabyte str to copy and encode in one C call,
    # during which the event loop thread could not get the GIL.
    parts: list[bytes] = [b'{"object":"list","data":[']
    for index, vector in enumerate(vectors):
        if as_base64:
            value = '"' + float32_base64(vector) + '"'
        else:
            value = json.dumps(vector, allow_nan=False, separators=(",", ":"))
        comma = "," if index else ""
        parts.append(f'{comma}{{"object":"embedding","index":{index},"embedding":'.encode())
        parts.append(value.encode())
        parts.append(b"}")
    # ensure_ascii: a field echoed from the request can never fail to encode.
    parts.append(b"]," + json.dumps(dict(envelope), separators=(",", ":"))[1:].encode())
    return b"".join(parts)


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
            return await run_cpu(_encode, vectors, as_base64, envelope)
        return _encode(vectors, as_base64, envelope)
    except (ValueError, OverflowError, struct.error) as exc:
        raise UpstreamError(
            "the embedding model returned a value that is not a finite number",
            code="upstream_invalid_answer",
        ) from exc


_dumps = dumps


def _dumps_by_choice(completion: Mapping[str, Any]) -> bytes:
    """The same bytes as :func:`_dumps`, one choice per ``json.dumps`` call: short C calls,
    between which the CPU thread lets the event loop have the GIL."""
    parts = []
    for key, value in completion.items():
        if key == "choices" and isinstance(value, list):
            encoded = b"[" + b",".join(_dumps(choice) for choice in value) + b"]"
        else:
            encoded = _dumps(value)
        parts.append(_dumps(key) + b":" + encoded)
    return b"{" + b",".join(parts) + b"}"


def _text_size(completion: Mapping[str, Any]) -> int:
    size = 0
    for choice in completion.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        size += len(content) if isinstance(content, str) else 0
    return size


async def completion_body(completion: Mapping[str, Any]) -> bytes:
    """A ``chat.completion`` as the response body (what ``JSONResponse`` would send);
    a large one is serialised on the CPU thread. Text that cannot be sent (a lone
    surrogate, a non-finite number) is a 502."""
    try:
        if _text_size(completion) > THREAD_CHARS:
            return await run_cpu(_dumps_by_choice, completion)
        return _dumps(completion)
    except (ValueError, UnicodeEncodeError) as exc:
        raise UpstreamError(
            "the upstream answer cannot be sent as JSON text (invalid Unicode or number)",
            code="upstream_invalid_answer",
        ) from exc
