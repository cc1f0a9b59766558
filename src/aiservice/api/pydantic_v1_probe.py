"""FastAPI's pydantic.v1 check, without importing pydantic.v1 to answer "no".

FastAPI refuses pydantic.v1 models: building a route asks of each parameter, body and
response annotation whether it is a v1 model, and ``jsonable_encoder`` asks the same of
an object it does not know. Each question imports ``pydantic.v1`` to ask it: ~80 M
instructions, the largest single cost of a Lambda cold start's first request (its
routes are built then), for an answer that is always "no" in a process that never
imported pydantic.v1, since a v1 model class or instance can only exist once the module
defining it has been imported. :func:`install` wraps FastAPI's two checks to answer that
case from ``sys.modules``; once anything imports pydantic.v1, FastAPI's own checks run,
so a v1 model is refused exactly as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["install"]

_V1 = "pydantic.v1"
_MARK = "__aiservice_v1_guard__"


def _guarded(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    if getattr(check, _MARK, False):
        return check

    def guarded(obj: Any) -> bool:
        if _V1 not in sys.modules:
            return False
        return check(obj)

    setattr(guarded, _MARK, True)
    guarded.__wrapped__ = check  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Guard FastAPI's checks (idempotent; a FastAPI without them is left alone)."""
    from fastapi import encoders
    from fastapi._compat import shared

    # annotation_is_pydantic_v1 calls is_pydantic_v1_model_class through the module
    # global; the encoders module imported is_pydantic_v1_model_instance by name.
    for module, name in (
        (shared, "is_pydantic_v1_model_class"),
        (shared, "is_pydantic_v1_model_instance"),
        (encoders, "is_pydantic_v1_model_instance"),
    ):
        check = getattr(module, name, None)
        if callable(check):
            setattr(module, name, _guarded(check))
