"""``secret://env/NAME``: a variable from the process environment or ``.env``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import SecretError

if TYPE_CHECKING:
    from ..config import Settings


class EnvSource:
    def __init__(self, settings: Settings | None = None, environ: Mapping[str, str] | None = None):
        self._environ = environ if environ is not None else (settings.environ if settings else {})

    def fetch(self, name: str) -> str:
        try:
            return self._environ[name]
        except KeyError:
            raise SecretError(f"environment variable {name} is not set") from None
