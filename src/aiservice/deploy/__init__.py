"""``aiservice render``: every deploy manifest from the one configuration.

A target is a function ``render(settings) -> {relative path: file text}`` registered in
:data:`TARGETS`. The inputs are the runtime settings (their secret references become each
platform's secret mechanism, see :mod:`.bindings`) and the ``deploy`` section (image,
region, memory, timeout, concurrency, instances). The manifests committed at the top of
the repository are the output for the built-in defaults; a test keeps them in sync.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["TARGETS", "render", "write"]

Renderer = Callable[["Settings"], dict[str, str]]

TARGETS: Registry[Renderer] = Registry("render target", group="aiservice.render_targets")
TARGETS.register("lambda", "aiservice.deploy.aws:render_lambda")
TARGETS.register("cloudrun", "aiservice.deploy.gcp:render_cloudrun")
TARGETS.register("function", "aiservice.deploy.gcp:render_function")
TARGETS.register("k8s", "aiservice.deploy.k8s:render_k8s")
TARGETS.register("compose", "aiservice.deploy.compose:render_compose")
TARGETS.register("prometheus", "aiservice.deploy.alerts:render_prometheus")


def render(settings: Settings, target: str) -> dict[str, str]:
    """The files of one target, keyed by their path relative to the output directory."""
    return TARGETS.get(target)(settings)


def write(files: dict[str, str], out_dir: str | Path) -> list[Path]:
    """Write rendered files under ``out_dir``; returns the paths written."""
    written = []
    for relative, text in files.items():
        path = Path(out_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if path.suffix == ".sh":
            path.chmod(0o755)
        written.append(path)
    return written
