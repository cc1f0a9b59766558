"""Templates of flows: JSON-like values whose strings hold ``${expr}`` placeholders.

Templates are strings holding ``${expr}``; ``$${`` is a literal ``${``. A string that is
exactly one ``${expr}`` keeps the value's type (object, list, number, null); otherwise the
values are formatted into the string (objects as JSON). Missing paths evaluate to ``null``;
load-time validation catches references to unknown roots and steps.

The expressions inside are those of :mod:`.expression`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .expression import Expr, ExprError, Path, parse_expr

__all__ = ["Template", "compile_template"]

# ${ ... } with quoted strings allowed to contain '}'.
_PLACEHOLDER = re.compile(r"""\$\$\{|\$\{((?:[^}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*)\}""")


class Template:
    """A compiled JSON-like value whose strings may hold ``${expr}`` placeholders."""

    def render(self, scope: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def paths(self) -> Iterator[Path]:
        return iter(())

    def static_prefix(self, known: Mapping[str, Any]) -> tuple[str, bool]:
        """The text every rendering starts with, given only the roots in ``known``.

        Returns ``(prefix, complete)``; ``complete`` is true when the whole rendering is
        known (no placeholder reads a root outside ``known``). Used to decide at load time
        whether a URL's origin is fixed by the configuration.
        """
        return "", False


_UNKNOWN = object()


def _known(expr: Expr, known: Mapping[str, Any]) -> Any:
    """The value of ``expr`` if it reads only ``known`` roots, else ``_UNKNOWN``."""
    if not all(path.root in known for path in expr.paths()):
        return _UNKNOWN
    try:
        return expr.evaluate(known)
    except Exception:  # e.g. a comparison of mismatched types: treat as unknown
        return _UNKNOWN


@dataclass(frozen=True)
class _Const(Template):
    value: Any

    def render(self, scope: Mapping[str, Any]) -> Any:
        return self.value

    def static_prefix(self, known: Mapping[str, Any]) -> tuple[str, bool]:
        return (self.value, True) if isinstance(self.value, str) else ("", False)


@dataclass(frozen=True)
class _Single(Template):
    expr: Expr

    def render(self, scope: Mapping[str, Any]) -> Any:
        return self.expr.evaluate(scope)

    def paths(self) -> Iterator[Path]:
        return self.expr.paths()

    def static_prefix(self, known: Mapping[str, Any]) -> tuple[str, bool]:
        value = _known(self.expr, known)
        # A lone placeholder renders the raw value: only a string is a usable URL.
        return (value, True) if isinstance(value, str) else ("", False)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class _Interpolated(Template):
    parts: tuple[str | Expr, ...]

    def render(self, scope: Mapping[str, Any]) -> Any:
        return "".join(p if isinstance(p, str) else _format(p.evaluate(scope)) for p in self.parts)

    def paths(self) -> Iterator[Path]:
        for part in self.parts:
            if isinstance(part, Expr):
                yield from part.paths()

    def static_prefix(self, known: Mapping[str, Any]) -> tuple[str, bool]:
        prefix: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                prefix.append(part)
                continue
            value = _known(part, known)
            if value is _UNKNOWN:
                return "".join(prefix), False
            prefix.append(_format(value))
        return "".join(prefix), True


@dataclass(frozen=True)
class _Mapping(Template):
    items: tuple[tuple[str, Template], ...]

    def render(self, scope: Mapping[str, Any]) -> Any:
        return {key: value.render(scope) for key, value in self.items}

    def paths(self) -> Iterator[Path]:
        for _, value in self.items:
            yield from value.paths()


@dataclass(frozen=True)
class _List(Template):
    items: tuple[Template, ...]

    def render(self, scope: Mapping[str, Any]) -> Any:
        return [item.render(scope) for item in self.items]

    def paths(self) -> Iterator[Path]:
        for item in self.items:
            yield from item.paths()


def _compile_string(text: str) -> Template:
    parts: list[str | Expr] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[pos : match.start()])
        pos = match.end()
        if match.group(0) == "$${":
            parts.append("${")
            continue
        parts.append(parse_expr(match.group(1)))
    rest = text[pos:]
    if "${" in rest:
        raise ExprError(f"unterminated '${{' in {text!r}")
    parts.append(rest)
    parts = [p for p in parts if p != ""]
    if not any(isinstance(p, Expr) for p in parts):
        return _Const("".join(str(p) for p in parts))
    if len(parts) == 1 and isinstance(parts[0], Expr):
        return _Single(parts[0])
    return _Interpolated(tuple(parts))


def compile_template(value: Any) -> Template:
    """Compile a JSON-like value (from YAML) into a :class:`Template`."""
    if isinstance(value, str):
        return _compile_string(value)
    if isinstance(value, Mapping):
        return _Mapping(tuple((str(k), compile_template(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return _List(tuple(compile_template(v) for v in value))
    return _Const(value)
