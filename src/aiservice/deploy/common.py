"""Helpers shared by the render targets: names, environment, YAML output."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["app_env", "dump", "gcp_image", "gcp_memory", "header", "slug"]

HEALTH_LIVE = "/health/live"
HEALTH_READY = "/health/ready"
CONTAINER_PORT = 8080


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
