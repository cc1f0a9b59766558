"""Default factories of the settings models, whose signature pydantic reads for free.

``model_construct`` (:func:`~aiservice.config.settings.validate_settings` builds every
section left at its defaults with it) asks each default factory, on every call, whether
it takes the validated data, by ``inspect.signature``: for ``list`` or ``dict`` that
parses a text signature (tokenize's regular expressions compiled on the first), for a
bound ``model_construct`` it unwraps the method. The ~50 factories of a default
configuration made ``load_settings`` cost ~46 M instructions (now ~5 M). A factory made by
:func:`factory` carries its signature, which ``inspect.signature`` returns as is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["factory", "new_dict", "new_list"]

T = TypeVar("T")

_NO_PARAMETERS = inspect.Signature()


def factory(make: Callable[[], T]) -> Callable[[], T]:
    """``make`` as a default factory (called without arguments, as pydantic would)."""

    def default() -> T:
        return make()

    default.__signature__ = _NO_PARAMETERS  # type: ignore[attr-defined]
    return default


new_list: Callable[[], list[Any]] = factory(list)
new_dict: Callable[[], dict[Any, Any]] = factory(dict)
