"""The safe template and expression language of flows (parsed, never ``eval``-ed).

:mod:`.expression` holds the expressions (roots, grammar, tokenizer, syntax tree, parser);
:mod:`.template` the ``${expr}`` placeholders in JSON-like values. This module is their
public face: import the language's names from here.
"""

from __future__ import annotations

from .expression import Expr, ExprError, Path, parse_expr
from .template import Template, compile_template

__all__ = [
    "Expr",
    "ExprError",
    "Path",
    "Template",
    "compile_template",
    "parse_expr",
]
