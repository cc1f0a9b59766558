"""Helpers shared by the render targets: names, environment, YAML output."""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import ConfigError
from ..platforms.serve import FLUSH_SECONDS

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "app_env",
    "container_port",
    "dump",
    "flows_dir",
    "gcp_image",
    "gcp_memory",
    "grace_env",
    "header",
    "is_public",
    "shutdown_seconds",
    "slug",
]

HEALTH_LIVE = "/health/live"
HEALTH_READY = "/health/ready"
GRACE_VAR = "AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS"


def container_port(settings: Settings) -> int:
    """The port the container listens on: ``server.port``, also set as ``PORT``."""
    return settings.server.port or 8080


def grace_env(settings: Settings, cap: float | None = None) -> dict[str, str]:
    """The drain time after SIGTERM (``server.graceful_shutdown_seconds``), at most ``cap``."""
    grace = settings.server.graceful_shutdown_seconds
    if cap is not None:
        grace = min(grace, cap)
    return {GRACE_VAR: f"{grace:g}"}


def shutdown_seconds(settings: Settings, before: float = 0.0) -> int:
    """Seconds from SIGTERM to SIGKILL that cover ``before`` (a preStop hook), the grace,
    the final flush and a second of slack for process exit."""
    grace = settings.server.graceful_shutdown_seconds
    return math.ceil(before + grace + FLUSH_SECONDS + 1)


def is_public(settings: Settings) -> bool:
    """``deploy.public``, or by default: public exactly when the app checks API keys."""
    if settings.deploy.public is not None:
        return settings.deploy.public
    auth = settings.auth
    return bool(auth.api_keys or auth.admin_keys or auth.keys)


def slug(settings: Settings) -> str:
    """The service name as a DNS label (Kubernetes, Cloud Run, CloudFormation names)."""
    name = re.sub(r"[^a-z0-9-]+", "-", settings.service.name.lower()).strip("-")
    return name[:50] or "aiservice"


def header(target: str, note: list[str] | None = None) -> str:
    lines = [
        f"# Rendered by `aiservice render --target {target}` from the aiservice configuration.",
        "# Change the config (deploy: section, secret references) and re-render; do not edit.",
    ]
    lines += [f"# {line}" for line in note or []]
    return "\n".join(lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """Block style, keys in insertion order, long strings unwrapped, no YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any, *, head: str = "") -> str:
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1000, default_flow_style=False)
    return head + text


def app_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """Plain environment for the app container: profile, ``deploy.env``, then overrides."""
    env: dict[str, str] = {}
    if settings.profile:
        env["AISERVICE_ENV"] = settings.profile
    env.update(settings.deploy.env)
    env.update(overrides)
    return env


def gcp_image(settings: Settings) -> str:
    """``deploy.image``, placed in Artifact Registry when it names no registry."""
    image = settings.deploy.image
    if "/" in image:
        return image
    d = settings.deploy
    return f"{d.gcp_region}-docker.pkg.dev/{d.gcp_project}/{slug(settings)}/{image}"


def gcp_memory(settings: Settings) -> str:
    return f"{settings.deploy.memory_mb}Mi"


def flows_dir(settings: Settings) -> str | None:
    """``flows_dir`` as the path every package copies it to, beside ``aiservice.yaml``.

    The app resolves a relative ``flows_dir`` against its config file, so the folder must
    travel to the same place relative to it; an absolute or escaping path cannot.
    """
    if not settings.flows_dir:
        return None
    path = PurePosixPath(settings.flows_dir.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"{settings.flows_dir!r} cannot be packaged: use a folder relative to the config "
            "file, inside the project (e.g. flows)",
            source=settings.sources[0] if settings.sources else None,
            key="flows_dir",
        )
    return str(path)
