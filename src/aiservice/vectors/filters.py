"""OpenAI's search ``filters`` as backend-neutral filters, checked against the attributes
the configuration declares filterable (pure functions).

OpenAI defines a comparison ``{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key",
"value"}`` and a compound ``{"type": "and"|"or", "filters": [...]}``, nested freely. A key
must be ``file_id``, ``filename`` or one of ``vectors.attributes``; anything else is a 400
(``unknown_attribute``): in server mode an unindexed key would scan every point, and a typo
would silently match nothing. Values must suit the attribute's type (ranges need numbers).

Attributes live in the payload under ``attributes.<key>``; the two built-ins at the top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast, get_args

from ..errors import InvalidRequestError
from .base import AttributeType, Comparison, Compound, Filter

__all__ = ["BUILTIN", "MAX_DEPTH", "check_attributes", "parse_filters", "payload_key"]

BUILTIN: dict[str, AttributeType] = {"file_id": "keyword", "filename": "keyword"}
MAX_DEPTH = 8
_COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
_RANGES = ("gt", "gte", "lt", "lte")


def payload_key(key: str) -> str:
    return key if key in BUILTIN else f"attributes.{key}"


def _bad(message: str, code: str = "invalid_filter") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param="filters")


def _fits(value: Any, kind: AttributeType) -> bool:
    if kind == "keyword":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "integer" else isinstance(value, int | float)


def _comparison(raw: Mapping[str, Any], known: Mapping[str, AttributeType]) -> Comparison:
    op, key, value = raw.get("type"), raw.get("key"), raw.get("value")
    if not isinstance(key, str):
        raise _bad("a comparison filter needs a string 'key'")
    kind = known.get(key)
    if kind is None:
        listed = ", ".join(sorted(known))
        raise _bad(
            f"filter key {key!r} is not a filterable attribute (filterable: {listed}); "
            "declare it in vectors.attributes",
            code="unknown_attribute",
        )
    values = value if isinstance(value, list) else [value]
    if op in ("in", "nin") and (not isinstance(value, list) or not value):
        raise _bad(f"filter {op!r} on {key!r} needs a non-empty list value")
    if op not in ("in", "nin") and isinstance(value, list):
        raise _bad(f"filter {op!r} on {key!r} needs a single value, not a list")
    if op in _RANGES and kind not in ("integer", "float"):
        raise _bad(f"filter {op!r} needs a numeric attribute; {key!r} is {kind}")
    if not all(_fits(v, kind) for v in values):
        raise _bad(f"filter value for {key!r} must be of type {kind}")
    return Comparison(payload_key(key), cast(Any, op), cast(Any, value))


def _parse(raw: Any, known: Mapping[str, AttributeType], depth: int) -> Filter:
    if depth > MAX_DEPTH:
        raise _bad(f"filters nest deeper than {MAX_DEPTH} levels")
    if not isinstance(raw, Mapping):
        raise _bad("a filter must be an object")
    op = raw.get("type")
    if op in ("and", "or"):
        subs = raw.get("filters")
        if not isinstance(subs, list) or not subs:
            raise _bad(f"compound filter {op!r} needs a non-empty 'filters' list")
        return Compound(op, tuple(_parse(s, known, depth + 1) for s in subs))
    if op in _COMPARISONS:
        return _comparison(raw, known)
    choices = ", ".join((*_COMPARISONS, "and", "or"))
    raise _bad(f"unknown filter type {op!r} (expected one of {choices})")


def parse_filters(raw: Any, attributes: Mapping[str, AttributeType]) -> Filter | None:
    """``filters`` of a search request, or ``None``; 400 for anything not accepted."""
    if raw is None:
        return None
    return _parse(raw, {**attributes, **BUILTIN}, 1)


def check_attributes(raw: Any, attributes: Mapping[str, AttributeType]) -> dict[str, Any]:
    """The ``attributes`` of an attached file: at most 16 scalar values (OpenAI's bounds);
    declared attributes must have their declared type, so filters on them work."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or len(raw) > 16:
        raise InvalidRequestError(
            "attributes must be an object of at most 16 keys", param="attributes"
        )
    scalars = get_args(AttributeType)
    for key, value in raw.items():
        kind = attributes.get(key)
        ok = isinstance(value, str | int | float | bool) if kind is None else _fits(value, kind)
        if not ok or not isinstance(key, str) or len(key) > 64:
            expected = kind if kind in scalars else "a string, number or boolean"
            raise InvalidRequestError(
                f"attribute {key!r} must be {expected}", param=f"attributes.{key}"
            )
    return dict(raw)
