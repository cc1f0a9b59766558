"""Strict, compact JSON text with the encoder built once: what the gateway sends its
clients (:mod:`aiservice.llm.encode`) and its upstreams (:mod:`aiservice.providers.http`).

``json.dumps`` with options builds a new encoder on every call, which costs more than
encoding a stream chunk or a small request body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "dumps_text"]


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _make_encoder() -> Callable[[Any], str]:
    c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        # No circular-reference markers: every value here came from a JSON parser or
        # was built from one.
        encode = c_make_encoder(
            None,
            _unserialisable,
            json.encoder.encode_basestring,  # what ensure_ascii=False uses
            None,
            ":",
            ",",
            False,
            False,
            False,  # allow_nan
        )
        return lambda value: "".join(encode(value, 0))
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return encoder.encode  # pragma: no cover - CPython has the C encoder


dumps_text = _make_encoder()
"""``json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))``."""


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON. Raises :class:`ValueError` for a non-finite number or a lone
    surrogate (``UnicodeEncodeError``), :class:`TypeError` for a non-JSON value."""
    return dumps_text(value).encode()
