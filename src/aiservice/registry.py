"""Lazy plugin registries: backends are named by dotted path and imported on first use.

Keeping backends as strings means ``import aiservice`` never imports boto3, redis or the
Google libraries; the import happens only when the configuration names a backend that
needs them, and a missing extra produces a message with the exact ``pip install`` to run.
Third-party packages add backends through an entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Generic, NamedTuple, TypeVar, cast

T = TypeVar("T")

__all__ = ["PluginNotFoundError", "PluginImportError", "Registry"]


class PluginNotFoundError(LookupError):
    """No backend of that name is registered."""


class PluginImportError(ImportError):
    """The backend exists but its optional dependencies are not installed."""


class _Entry(NamedTuple):
    target: str  # "package.module:Attribute"
    install_hint: str | None


class Registry(Generic[T]):
    """Name → object, resolved lazily from ``module:attribute`` strings.

    ``kind`` is used in messages ("cache backend"), ``group`` is the entry-point group that
    third parties register under.
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._loaded: dict[str, T] = {}
        self._entry_points_scanned = False

    def register(self, name: str, target: str, install_hint: str | None = None) -> None:
        self._entries[name] = _Entry(target, install_hint)
        self._loaded.pop(name, None)

    def add(self, name: str, obj: T) -> None:
        """Register an already-imported object (tests, embedding applications)."""
        self._entries[name] = _Entry(f"<object {obj!r}>", None)
        self._loaded[name] = obj

    def names(self) -> list[str]:
        self._scan_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        self._scan_entry_points()
        return name in self._entries

    def get(self, name: str) -> T:
        if name in self._loaded:
            return self._loaded[name]
        entry = self._entries.get(name)
        if entry is None:
            # Entry points are read only for names that are not built in: scanning every
            # installed distribution costs tens of milliseconds of cold start, and built-ins
            # win over third-party names anyway (setdefault below).
            self._scan_entry_points()
            entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise PluginNotFoundError(f"unknown {self.kind} {name!r} (known: {known})")
        module_name, _, attr = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f"; install it with: {entry.install_hint}" if entry.install_hint else ""
            raise PluginImportError(
                f"{self.kind} {name!r} needs a missing dependency ({exc.name or exc}){hint}"
            ) from exc
        obj = cast(T, getattr(module, attr) if attr else module)
        self._loaded[name] = obj
        return obj

    def _scan_entry_points(self) -> None:
        if self._entry_points_scanned or self.group is None:
            return
        self._entry_points_scanned = True
        for ep in entry_points(group=self.group):
            self._entries.setdefault(ep.name, _Entry(ep.value, None))
