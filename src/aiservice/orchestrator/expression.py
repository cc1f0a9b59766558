"""The expression language of flows: tokenizer, syntax tree and parser (never ``eval``).

Expressions read values by path from four roots: ``input``, ``steps.<id>.output`` (and
``.status``, ``.http_status``, ``.error``, ``.attempts``), ``settings.functions`` /
``settings.service`` and ``secrets.<source>.<name>`` (the reference
``secret://<source>/<name>``). Grammar::

    expr    := or_expr ('??' or_expr)*          # first non-null value
    or_expr := and_expr ('or' and_expr)*
    and_expr:= not_expr ('and' not_expr)*
    not_expr:= 'not' not_expr | compare
    compare := primary (('=='|'!='|'<'|'<='|'>'|'>=') primary)?
    primary := literal | path | '(' expr ')'
    path    := NAME ('.' NAME | '[' INT | STRING ']')*
    literal := NUMBER | STRING | true | false | null
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Expr", "ExprError", "Path", "parse_expr"]


class ExprError(ValueError):
    """A syntax error in an expression or template; the message says where."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+(?:\.\d+)?)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>\?\?|==|!=|<=|>=|<|>|\(|\)|\[|\]|\.)
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _unquote(token: str) -> str:
    """A quoted string literal with JSON escapes (either quote style)."""
    inner = token[1:-1]
    if token[0] == "'":
        inner = inner.replace("\\'", "'").replace('"', '\\"')
    try:
        value: str = json.loads(f'"{inner}"')
    except ValueError as exc:
        raise ExprError(f"bad string literal {token}: {exc}") from exc
    return value


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r} in {text!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind or "")
        if kind == "num":
            tokens.append(("lit", float(value) if "." in value else int(value)))
        elif kind == "str":
            tokens.append(("lit", _unquote(value)))
        elif kind == "name" and value in _CONSTANTS:
            tokens.append(("lit", _CONSTANTS[value]))
        elif kind == "name" and value in _KEYWORDS:
            tokens.append(("kw", value))
        else:
            tokens.append((kind or "op", value))
    return tokens


class Expr:
    """A parsed expression node."""

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def paths(self) -> Iterator[Path]:
        return iter(())


@dataclass(frozen=True)
class Literal(Expr):
    value: Any

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Path(Expr):
    root: str
    parts: tuple[str | int, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        node: Any = scope.get(self.root)
        for part in self.parts:
            if isinstance(node, Mapping):
                node = node.get(part) if isinstance(part, str) else node.get(str(part))
            elif (
                isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node)
            ):
                node = node[part]
            else:
                return None
        return node

    def paths(self) -> Iterator[Path]:
        yield self

    def __str__(self) -> str:
        return ".".join([self.root, *(str(p) for p in self.parts)])


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return not self.operand.evaluate(scope)

    def paths(self) -> Iterator[Path]:
        return self.operand.paths()


@dataclass(frozen=True)
class Chain(Expr):
    """``and`` / ``or`` / ``??`` over two or more operands (short-circuiting)."""

    op: str
    operands: tuple[Expr, ...]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        value: Any = None
        for operand in self.operands:
            value = operand.evaluate(scope)
            if self.op == "and" and not value:
                return value
            if self.op == "or" and value:
                return value
            if self.op == "??" and value is not None:
                return value
        return value

    def paths(self) -> Iterator[Path]:
        for operand in self.operands:
            yield from operand.paths()


@dataclass(frozen=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        try:
            return _COMPARE[self.op](self.left.evaluate(scope), self.right.evaluate(scope))
        except TypeError:  # ordering across types (e.g. null < 3) is simply false
            return False

    def paths(self) -> Iterator[Path]:
        yield from self.left.paths()
        yield from self.right.paths()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        if token and token[0] == kind and (value is None or token[1] == value):
            self.pos += 1
            return True
        return False

    def fail(self, expected: str) -> ExprError:
        token = self.peek()
        got = repr(token[1]) if token else "end of expression"
        return ExprError(f"expected {expected}, got {got} in {self.text!r}")

    def parse(self) -> Expr:
        if not self.tokens:
            raise ExprError("empty expression")
        expr = self.chain("??", self.or_expr)
        if self.peek() is not None:
            raise self.fail("end of expression")
        return expr

    def chain(self, op: str, sub: Callable[[], Expr]) -> Expr:
        operands = [sub()]
        while self.take("op", op) or self.take("kw", op):
            operands.append(sub())
        return operands[0] if len(operands) == 1 else Chain(op, tuple(operands))

    def or_expr(self) -> Expr:
        return self.chain("or", self.and_expr)

    def and_expr(self) -> Expr:
        return self.chain("and", self.not_expr)

    def not_expr(self) -> Expr:
        if self.take("kw", "not"):
            return Not(self.not_expr())
        left = self.primary()
        token = self.peek()
        if token and token[0] == "op" and token[1] in _COMPARE:
            self.pos += 1
            return Compare(token[1], left, self.primary())
        return left

    def primary(self) -> Expr:
        token = self.peek()
        if token is None:
            raise self.fail("a value")
        self.pos += 1
        if token[0] == "lit":
            return Literal(token[1])
        if token[0] == "name":
            return self.path(token[1])
        if token == ("op", "("):
            inner = self.chain("??", self.or_expr)
            if not self.take("op", ")"):
                raise self.fail("')'")
            return inner
        self.pos -= 1
        raise self.fail("a value")

    def path(self, root: str) -> Path:
        parts: list[str | int] = []
        while True:
            if self.take("op", "."):
                token = self.peek()
                if token is None or token[0] not in ("name", "kw", "lit"):
                    raise self.fail("a name after '.'")
                self.pos += 1
                literal_index = token[0] == "lit" and isinstance(token[1], int)
                parts.append(token[1] if literal_index else str(token[1]))
            elif self.take("op", "["):
                token = self.peek()
                if token is None or token[0] != "lit" or not isinstance(token[1], int | str):
                    raise self.fail("an index or a quoted key")
                self.pos += 1
                parts.append(token[1])
                if not self.take("op", "]"):
                    raise self.fail("']'")
            else:
                return Path(root, tuple(parts))


def parse_expr(text: str) -> Expr:
    """Parse one expression (without ``${}``); raises :class:`ExprError`."""
    return _Parser(text).parse()
