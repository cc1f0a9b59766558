"""Request validation against a flow's ``input`` block (a small JSON-schema subset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequestError
from .model import InputSpec

__all__ = ["validate_input"]

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def validate_input(spec: InputSpec, payload: Any) -> dict[str, Any]:
    """The request body if it satisfies ``spec``; else a 400 naming the field."""
    if not isinstance(payload, dict):
        raise InvalidRequestError("the request body must be a JSON object", code="invalid_input")
    for key in spec.required:
        if payload.get(key) is None:
            raise InvalidRequestError(
                f"missing required field {key!r}", code="invalid_input", param=key
            )
    for key, prop in spec.properties.items():
        if key in payload and prop.type is not None and not _TYPES[prop.type](payload[key]):
            raise InvalidRequestError(
                f"field {key!r} must be of type {prop.type}", code="invalid_input", param=key
            )
    if not spec.additional_properties:
        unknown = sorted(set(payload) - set(spec.properties) - set(spec.required))
        if unknown:
            raise InvalidRequestError(
                f"unknown field {unknown[0]!r}", code="invalid_input", param=unknown[0]
            )
    return payload
