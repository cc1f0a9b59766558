"""Strict JSON for request bodies: one parse that refuses what would break later.

Python's ``json`` accepts input that only fails further down the request, as a 500: lone
UTF-16 surrogates (``"\\ud800"``) decode to strings that cannot be encoded to UTF-8 for the
cache key, the log line or the upstream call; nesting deep enough to exhaust the
recursion limit of the parser or of any later walk; ``NaN``/``Infinity`` literals and
``1e999999`` (which no JSON encoder may send upstream); integers past the interpreter's
digit limit (a ``ValueError``, not a ``JSONDecodeError``); duplicate keys (two readers of
one body may disagree on the value). :func:`parse_json_body` refuses all of them with a
400 envelope before anything else sees the body.

The depth and surrogate checks scan the raw bytes with C-level primitives (``bytes.count``,
compiled regular expressions, ``translate``) and no recursion, so a hostile body costs no
more than a well-formed one and the common case (few brackets, no ``\\u`` escapes) costs a
few ``count`` calls.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate
from typing import Any

from ..errors import InvalidRequestError

__all__ = ["MAX_NUMBER_DIGITS", "exceeds_depth", "has_lone_surrogate", "parse_json_body"]

MAX_NUMBER_DIGITS = 100
"""Longest integer literal accepted; far beyond any id, seed or token count."""

_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# Openers become +1 and closers -1 once read as signed bytes.
_SIGNED = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _invalid(message: str, code: str) -> InvalidRequestError:
    return InvalidRequestError(message, code=code)


def _unescaped(raw: bytes) -> bytes:
    """``raw`` without escaped backslashes: what is left of each ``\\`` starts an escape.

    Left-to-right pairing is exactly how JSON tokenizes a run of backslashes, so in
    ``"\\\\ud800"`` the ``u`` follows an escaped backslash and starts no escape.
    """
    return raw.replace(b"\\\\", b"") if b"\\" in raw else raw


def _outside_strings(raw: bytes) -> bytes:
    """The bytes of ``raw`` that are not inside a JSON string (structure and scalars)."""
    if b"\\" in raw:
        raw = _unescaped(raw).replace(b'\\"', b"")
    # With escaped quotes gone, quotes alternate: open, close, open...
    return b"".join(raw.split(b'"')[::2])


def exceeds_depth(raw: bytes, limit: int) -> bool:
    """Whether arrays/objects in ``raw`` nest more than ``limit`` levels deep."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # cannot nest deeper than the number of openers
    # Brackets inside strings are text, not structure.
    structure = _outside_strings(raw).translate(None, _NOT_BRACKET)
    steps = array("b", structure.translate(_SIGNED))
    return max(accumulate(steps), default=0) > limit


def has_lone_surrogate(raw: bytes) -> bool:
    """Whether a ``\\uD800``-``\\uDFFF`` escape in ``raw`` is not part of a valid pair."""
    if b"\\" not in raw or _SURROGATE.search(raw) is None:
        return False
    return _SURROGATE.search(_PAIR.sub(b"", _unescaped(raw))) is not None


def _reject_constant(name: str) -> Any:
    raise _invalid(f"{name} is not valid JSON", "invalid_number")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _invalid(f"number {text[:20]}... is out of range", "invalid_number")
    return value


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _invalid(f"integer literal longer than {MAX_NUMBER_DIGITS} digits", "invalid_number")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _invalid(f"duplicate key {key[:64]!r} in a JSON object", "duplicate_key")
            seen.add(key)
    return obj


# Built once: ``json.loads`` with any hook builds a decoder (and its scanner) per call,
# a large part of parsing a small body. Decoding keeps no state between calls.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_constant=_reject_constant,
    parse_float=_float,
    parse_int=_int,
)


def parse_json_body(raw: bytes, *, max_depth: int) -> dict[str, Any]:
    """The JSON object in ``raw``, or a 400 :class:`InvalidRequestError` saying why not."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(
            f"request body is not valid UTF-8 (byte {exc.start})", "invalid_encoding"
        ) from exc
    if exceeds_depth(raw, max_depth):
        raise _invalid(
            f"JSON nesting deeper than {max_depth} levels (limits.max_json_depth)",
            "json_too_deep",
        )
    if has_lone_surrogate(raw):
        raise _invalid(
            "request body contains a lone UTF-16 surrogate escape (\\ud800-\\udfff)",
            "invalid_unicode",
        )
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise ValueError("byte order mark")
        value = _DECODER.decode(text)
    except InvalidRequestError:
        raise
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; RecursionError cannot happen below the depth
        # limit but is refused the same way should the limit be configured very high.
        raise _invalid("request body is not valid JSON", "invalid_json") from exc
    if not isinstance(value, dict):
        raise _invalid("request body must be a JSON object", "invalid_json")
    return value
