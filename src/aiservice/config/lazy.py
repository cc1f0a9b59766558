"""Sections whose model is imported only when a configuration sets them.

A pydantic class costs cold start at import (~0.35 M instructions per field); a section
that only some commands read (``alerts``: ``aiservice render``) is declared with
:func:`lazy_section` instead, as ``Optional``, unset by default. Its model module is
imported when the section's validator is built: when a file or variable sets it, or
when a tool builds the whole ``Settings`` model (``config show``).
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler
from pydantic_core import CoreSchema

__all__ = ["lazy_section"]


def lazy_section(target: str) -> type:
    """A stand-in type for the model ``module:Name``; :mod:`.envvars` resolves it too
    (``resolve_section``), to decode variables by the model's field types."""
    module, _, name = target.partition(":")

    def resolve_section() -> type[BaseModel]:
        model: type[BaseModel] = getattr(importlib.import_module(module), name)
        return model

    def schema(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler.generate_schema(resolve_section())

    return type(
        name,
        (),
        {
            "__get_pydantic_core_schema__": staticmethod(schema),
            "resolve_section": staticmethod(resolve_section),
            "__module__": module,
        },
    )
