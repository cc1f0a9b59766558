"""Environment variables to a settings tree, decoded by the type of the setting they name.

``AISERVICE_<SECTION>__<KEY>[__<KEY>...]=value`` sets one setting (names are
case-insensitive; map keys such as provider names are lower-cased). The value is read by
what the setting holds, so people can write what they would type in a shell:

* scalars (strings, numbers, booleans, choices): as written; pydantic converts and checks.
  An empty value unsets an optional setting.
* lists of scalars: a JSON array, or comma-separated (``http://a,http://b``); empty = ``[]``.
* maps of scalars: a JSON object, or ``key=value`` pairs separated by commas.
* sections, lists of objects and maps of objects: a JSON value, or one variable per nested
  key (``AISERVICE_AUTH__KEYS__CI__KEY=...``).
* free-form values (``flows``, ``functions``): JSON if it parses, else the string.

Every problem raises :class:`~aiservice.errors.ConfigError` naming the variable and the key.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Union

from pydantic import AliasChoices, BaseModel

from ..errors import ConfigError

__all__ = ["EnvTree", "env_tree"]

Kind = Literal["model", "map", "list", "any", "scalar"]
_SCALARS = (str, int, float, bool)


class _Type(NamedTuple):
    kind: Kind
    annotation: Any
    optional: bool = False


@dataclass(slots=True)
class EnvTree:
    """Nested settings data, and which variable set each path (for error messages)."""

    data: dict[str, Any]
    origins: dict[tuple[str, ...], str]


def _classify(annotation: Any) -> _Type:
    resolve = getattr(annotation, "resolve_section", None)
    if resolve is not None:  # a lazy section (.lazy): its model, imported now it is set
        annotation = resolve()
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _classify(members[0]) if len(members) == 1 else _Type("any", Any)
        return _Type(inner.kind, inner.annotation, optional=True)
    if annotation is Any:
        return _Type("any", annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Type("model", annotation)
    if origin in (dict, Mapping) or annotation is dict:
        return _Type("map", annotation)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        return _Type("list", annotation)
    return _Type("scalar", annotation)


def _item(annotation: Any, kind: Kind) -> Any:
    args = typing.get_args(annotation)
    if not args:
        return Any
    return args[-1] if kind == "map" else args[0]


def _model_field(model: type[BaseModel], name: str) -> Any | None:
    for field_name, info in model.model_fields.items():
        aliases = {field_name}
        if isinstance(info.validation_alias, AliasChoices):
            aliases |= {c for c in info.validation_alias.choices if isinstance(c, str)}
        elif isinstance(info.validation_alias, str):
            aliases.add(info.validation_alias)
        if name in aliases:
            return info.annotation
    return None


def _target(root: type[BaseModel], path: tuple[str, ...]) -> _Type | None:
    """The type a variable for ``path`` sets; None when the path names no setting."""
    current = _Type("model", root)
    for part in path:
        if current.kind == "model":
            annotation = _model_field(current.annotation, part)
            if annotation is None:
                return None
            current = _classify(annotation)
        elif current.kind in ("map", "any"):
            current = _classify(_item(current.annotation, "map"))
        else:  # lists and scalars have no named children
            return None
    return current


def _is_scalar(annotation: Any) -> bool:
    item = _classify(annotation)
    if item.kind != "scalar":
        return False
    origin = typing.get_origin(item.annotation)
    return origin is Literal or item.annotation in _SCALARS


def _json(value: str, expected: type, what: str, hint: str) -> Any:
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected {what}{hint}; JSON error: {exc.msg}") from exc
    except RecursionError as exc:
        raise ValueError(f"expected {what}{hint}; JSON nested too deeply") from exc
    if not isinstance(decoded, expected):
        raise ValueError(f"expected {what}{hint}")
    return decoded


def _pairs(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (p.strip() for p in value.split(",")):
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas, got {item!r}")
        pairs[key.strip()] = val.strip()
    return pairs


def _decode(value: str, target: _Type) -> Any:
    stripped = value.strip()
    if target.kind == "scalar":
        return None if target.optional and stripped == "" else value
    if target.kind == "any":
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    if stripped == "" and (target.optional or target.kind in ("list", "map")):
        return None if target.optional else ([] if target.kind == "list" else {})
    scalar_items = _is_scalar(_item(target.annotation, target.kind))
    if target.kind == "list":
        if stripped.startswith("[") or not scalar_items:
            hint = "" if scalar_items else " (items are objects)"
            return _json(stripped, list, "a JSON array or comma-separated values", hint)
        return [p.strip() for p in value.split(",") if p.strip()]
    if target.kind == "map":
        if stripped.startswith("{") or not scalar_items:
            hint = "" if scalar_items else " or one variable per key (NAME__<KEY>__<FIELD>)"
            return _json(stripped, dict, "a JSON object", hint)
        return _pairs(stripped)
    return _json(stripped, dict, "a JSON object", " or one variable per key (NAME__<KEY>)")


def _place(tree: dict[str, Any], path: tuple[str, ...], value: Any, var: str) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                "a parent of this key is set by another variable",
                source=var,
                key=".".join(path),
            )
        node = child
    node[path[-1]] = value


def env_tree(
    root: type[BaseModel],
    variables: Mapping[str, tuple[tuple[str, ...], str]],
    label: str,
) -> EnvTree:
    """Decode ``variables`` (name -> (settings path, raw value)) into one nested tree.

    ``label`` says where the variables come from (``environment``, ``.env``).
    Shorter paths are placed first, so ``AISERVICE_CORS__MAX_AGE`` refines ``AISERVICE_CORS``.
    """
    tree: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for name, (path, raw) in sorted(variables.items(), key=lambda item: len(item[1][0])):
        source = f"{label} variable {name}"
        key = ".".join(path)
        target = _target(root, path)
        if target is None:
            # Unknown keys are reported by validation, with the same wording as YAML ones.
            value: Any = raw
        else:
            try:
                value = _decode(raw, target)
            except ValueError as exc:
                raise ConfigError(str(exc), source=source, key=key) from exc
        _place(tree, path, value, source)
        origins[path] = source
    return EnvTree(tree, origins)
