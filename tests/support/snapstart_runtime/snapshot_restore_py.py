"""Stand-in for the Lambda Python runtime's ``snapshot_restore_py`` (tests only).

The same registration API as the module Lambda ships (and as ``snapshot-restore-py`` on
PyPI): ``register_before_snapshot(func, *args, **kwargs)`` and
``register_after_restore(func, *args, **kwargs)`` record ``(func, args, kwargs)`` and return
``func``; ``get_before_snapshot()`` / ``get_after_restore()`` return the registries. The
runtime's own runner is reproduced by :func:`run_before_snapshot` (hooks in reverse order of
registration, each run once) and :func:`run_after_restore` (registration order, on every
restore), so a test plays the part of Lambda publishing a version and restoring it.

This folder goes first on ``sys.path`` of the process under test, ahead of the PyPI package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "get_after_restore",
    "get_before_snapshot",
    "register_after_restore",
    "register_before_snapshot",
    "run_after_restore",
    "run_before_snapshot",
]

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot_registry: list[Hook] = []
_after_restore_registry: list[Hook] = []
STAND_IN = True  # lets a test prove this module, not the PyPI one, was imported


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    return _before_snapshot_registry


def get_after_restore() -> list[Hook]:
    return _after_restore_registry


def run_before_snapshot() -> None:
    """What the runtime does once, after init and before taking the snapshot."""
    hooks = get_before_snapshot()
    while hooks:
        func, args, kwargs = hooks.pop()
        func(*args, **kwargs)


def run_after_restore() -> None:
    """What the runtime does in each environment restored from the snapshot."""
    for func, args, kwargs in get_after_restore():
        func(*args, **kwargs)
