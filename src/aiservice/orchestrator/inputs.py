"""Request validation against a flow's ``input`` block (a small JSON-schema subset).

:func:`validate_input` enforces the block; :func:`input_schema` states the same rules as a
JSON Schema for the OpenAPI document, so both always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .kinds import ErrorKind
from .model import InputSpec

__all__ = ["input_schema", "validate_input"]

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
        raise ErrorKind.INVALID_INPUT.error("the request body must be a JSON object")
    for key in spec.required:
        if payload.get(key) is None:
            raise ErrorKind.INVALID_INPUT.error(f"missing required field {key!r}", param=key)
    for key, prop in spec.properties.items():
        if key in payload and prop.type is not None and not _TYPES[prop.type](payload[key]):
            raise ErrorKind.INVALID_INPUT.error(
                f"field {key!r} must be of type {prop.type}", param=key
            )
    if not spec.additional_properties:
        unknown = sorted(set(payload) - set(spec.properties) - set(spec.required))
        if unknown:
            raise ErrorKind.INVALID_INPUT.error(f"unknown field {unknown[0]!r}", param=unknown[0])
    return payload


def input_schema(spec: InputSpec) -> dict[str, Any]:
    """The JSON Schema of the request bodies :func:`validate_input` accepts."""
    properties: dict[str, Any] = {
        key: ({"type": prop.type} if prop.type is not None else {})
        for key, prop in spec.properties.items()
    }
    for key in spec.required:
        # A required key must be present and not null (``payload.get(key) is None``).
        properties[key] = {**properties.get(key, {}), "not": {"type": "null"}}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if spec.required:
        schema["required"] = list(spec.required)
    if not spec.additional_properties:
        schema["additionalProperties"] = False
    return schema
