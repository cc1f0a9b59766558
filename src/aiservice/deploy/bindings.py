"""How each ``secret://`` reference in the configuration reaches the app on a platform.

For every reference the renderers ask :func:`bindings` for one :class:`Binding`:

* ``secret://env/X`` - the platform injects variable ``X`` from its own secret store
  (Kubernetes Secret key ``X``; Secret Manager secret ``x`` with dashes on GCP, as in
  ``--set-secrets X=x:latest``; SSM parameter ``/<service>/<stage>/X`` on Lambda; the
  shell or ``.env`` for docker-compose);
* ``secret://gcp-sm/S`` on GCP - the secret is injected into the variable that overrides
  the config key (``AISERVICE_PROVIDERS__OPENAI__API_KEY``), or, where no config key holds
  the reference (flows, list items), into the variable the resolver reads first
  (``SECRET__GCP_SM__S``, see :func:`~aiservice.secrets.base.injected_variable`), so no
  Secret Manager call happens at startup;
* ``secret://aws-sm/...`` / ``secret://aws-ssm/...`` on Lambda - resolved by the app at
  startup; the function role may read exactly those ARNs;
* anything else is resolved by the app at runtime with the platform's credentials and is
  listed in the rendered file's header so nobody is surprised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..secrets.base import SecretRef, find_references, injected_variable

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Binding", "bindings", "config_env_name", "dashed"]

_ENV_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Binding:
    path: str
    """The config key holding the reference (``providers.openai.api_key``)."""
    ref: SecretRef
    env_var: str | None
    """The variable the platform sets, or ``None`` when the app resolves the reference."""


def dashed(name: str) -> str:
    """``OPENAI_API_KEY`` -> ``openai-api-key`` (Secret Manager / DNS-friendly)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def config_env_name(path: str) -> str | None:
    """``providers.openai.api_key`` -> ``AISERVICE_PROVIDERS__OPENAI__API_KEY``.

    ``None`` for list items, flows (templates and files, not plain values) and keys that
    cannot be part of a variable name.
    """
    if "[" in path or path.split(".", 1)[0] == "flows":
        return None
    parts = path.split(".")
    if not all(_ENV_SAFE.match(p) for p in parts):
        return None
    return "AISERVICE_" + "__".join(p.upper() for p in parts)


def bindings(settings: Settings, native: frozenset[str] = frozenset()) -> list[Binding]:
    """One binding per distinct reference (first place it is used); ``native`` schemes
    become variables."""
    out: list[Binding] = []
    seen: set[str] = set()
    for path, raw in find_references(settings):
        ref = SecretRef.parse(raw)
        if ref.scheme == "env":
            env_var: str | None = ref.name
        elif ref.scheme in native:
            env_var = config_env_name(path) or injected_variable(raw)
        else:
            env_var = None
        key = f"{raw} {env_var}"
        if key not in seen:
            seen.add(key)
            out.append(Binding(path, ref, env_var))
    return out


def runtime_note(items: list[Binding]) -> list[str]:
    refs = sorted({b.ref.raw for b in items if b.env_var is None})
    if not refs:
        return []
    return ["Resolved by the app at startup (grant the platform identity read access):"] + [
        f"  {r}" for r in refs
    ]
