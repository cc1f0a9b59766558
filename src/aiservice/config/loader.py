"""Loading settings: built-in defaults < YAML file < profile overlay < ``.env`` < environment.

This is the only module that reads the process environment. Everything else receives a
:class:`Settings` instance (and, for ``secret://env/...`` references, the environment
snapshot it carries).

* YAML file: ``--config PATH``, else ``AISERVICE_CONFIG``, else ``./aiservice.yaml`` if present.
* Profile: ``--profile NAME`` or ``AISERVICE_ENV`` selects ``config/NAME.yaml`` (next to the
  YAML file, else in the working directory), deep-merged over the file.
* Environment: ``AISERVICE_<SECTION>__<KEY>=value``, decoded by :mod:`.envvars` (lists as
  JSON or comma-separated, maps as JSON or ``key=value`` pairs); ``PORT`` sets ``server.port``.

Any string value may be a secret reference (``secret://env/NAME``); references are kept as
written here and resolved by :mod:`aiservice.secrets` so they are never logged.

Invalid input raises :class:`~aiservice.errors.ConfigError` naming the file (or variable)
and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import ErrorDetails

from ..errors import ConfigError
from .envvars import EnvTree, env_tree
from .settings import ENV_PREFIX, Settings, SettingsInvalid, validate_settings

if TYPE_CHECKING:
    import argparse

DEFAULT_CONFIG_FILE = "aiservice.yaml"
# AISERVICE_CONFIG / AISERVICE_ENV select files; they are not settings keys.
_SELECTORS = frozenset({ENV_PREFIX + "CONFIG", ENV_PREFIX + "ENV"})
# Platform conventions read as settings unless the AISERVICE_ variable is set too.
# PORT: Cloud Run, Heroku, the Lambda Web Adapter.
_PLATFORM_ALIASES: dict[str, tuple[str, ...]] = {
    "PORT": ("server", "port"),
    "GOOGLE_CLOUD_PROJECT": ("logging", "gcp_project"),
}

_Variables = dict[str, tuple[tuple[str, ...], str]]


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml  # only when there is a file to read: the defaults need no parser

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found", source=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{problem}{where}", source=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", source=str(path))
    return data


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # only when there is a .env file

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(data: Mapping[str, Any], path: tuple[str | int, ...]) -> bool:
    node: Any = data
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _variable_for(parts: tuple[str, ...], tree: EnvTree) -> str:
    """The variable that set ``parts`` (or its nearest parent, or a field beside it)."""
    for depth in range(len(parts), 0, -1):
        origin = tree.origins.get(parts[:depth])
        if origin is not None:
            return origin
    # A required field missing from an object only variables created (providers.x.type).
    return next(o for p, o in tree.origins.items() if p[: len(parts) - 1] == parts[:-1])


def _source_of(
    loc: tuple[str | int, ...],
    missing: bool,
    layers: Sequence[tuple[str, dict[str, Any]]],
    trees: Sequence[EnvTree],
) -> str:
    """Where the value at ``loc`` came from: the highest-priority layer holding it (for a
    missing field, holding its parent object)."""

    def holds(data: Mapping[str, Any]) -> bool:
        return _has_path(data, loc) or (missing and len(loc) > 1 and _has_path(data, loc[:-1]))

    for tree in reversed(trees):
        if holds(tree.data):
            return _variable_for(tuple(str(p) for p in loc), tree)
    name: str
    for name, data in reversed(layers):
        if holds(data):
            return name
    return "defaults"


def _describe_errors(
    errors: Sequence[ErrorDetails],
    layers: Sequence[tuple[str, dict[str, Any]]],
    trees: Sequence[EnvTree],
) -> str:
    lines = []
    for err in errors:
        loc = tuple(err["loc"]) or ("<root>",)
        source = _source_of(loc, err["type"] == "missing", layers, trees)
        # The documented name of ``limits.global_`` is ``global``.
        key = ".".join("global" if p == "global_" else str(p) for p in loc)
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {message}")
    return "\n  ".join(lines)


def _reject_unknown_sections(label: str, variables: _Variables) -> None:
    """A typo such as ``AISERVICE_CAHCE__TTL`` would otherwise be ignored silently."""
    known = set(Settings.model_fields)
    for name, (path, _) in variables.items():
        if path[0] not in known:
            raise ConfigError(
                f"unknown section {path[0]!r} (known: {', '.join(sorted(known))})",
                source=f"{label} variable {name}",
                key=path[0],
            )


def _settings_variables(
    mapping: Mapping[str, str], aliases: Mapping[str, tuple[str, ...]]
) -> _Variables:
    """``AISERVICE_A__B`` (and the platform ``aliases``) -> settings path and raw value."""
    found: _Variables = {}
    for name, value in mapping.items():
        upper = name.upper()
        if upper in _SELECTORS:
            continue
        if upper.startswith(ENV_PREFIX):
            path = tuple(p.lower() for p in upper[len(ENV_PREFIX) :].split("__"))
            found[name] = (path, value)
        elif upper in aliases and not _explicit(mapping, aliases[upper]):
            found[name] = (aliases[upper], value)
    return found


def _explicit(mapping: Mapping[str, str], path: tuple[str, ...]) -> bool:
    wanted = ENV_PREFIX + "__".join(path).upper()
    return any(k.upper() == wanted for k in mapping)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_file: str | os.PathLike[str] | None = ".env",
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build :class:`Settings` from files and the environment (see the module docstring).

    ``environ`` defaults to the process environment; tests pass their own mapping.
    """
    env = dict(os.environ if environ is None else environ)
    base_dir = Path(cwd) if cwd is not None else Path.cwd()

    explicit = config_file if config_file is not None else env.get(ENV_PREFIX + "CONFIG")
    path: Path | None
    if explicit:
        path = Path(explicit)
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ConfigError("config file not found", source=str(path))
    else:
        candidate = base_dir / DEFAULT_CONFIG_FILE
        path = candidate if candidate.is_file() else None

    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((str(path), _read_yaml(path, "config file")))

    profile = profile or env.get(ENV_PREFIX + "ENV") or None
    if profile:
        profile_dir = (path.parent if path is not None else base_dir) / "config"
        profile_path = profile_dir / f"{profile}.yaml"
        if not profile_path.is_file():
            known = (
                sorted(p.stem for p in profile_dir.glob("*.yaml")) if profile_dir.is_dir() else []
            )
            raise ConfigError(
                f"unknown profile {profile!r} (known: {', '.join(known) or 'none'})",
                source=str(profile_path),
                key="AISERVICE_ENV / --profile",
            )
        layers.append((str(profile_path), _read_yaml(profile_path, "profile")))

    dotenv: dict[str, str] = {}
    if dotenv_file is not None:
        dotenv_path = Path(dotenv_file)
        dotenv = _read_dotenv(dotenv_path if dotenv_path.is_absolute() else base_dir / dotenv_path)
    trees = []
    for label, mapping, aliases in ((".env", dotenv, {}), ("environment", env, _PLATFORM_ALIASES)):
        variables = _settings_variables(mapping, aliases)
        _reject_unknown_sections(label, variables)
        trees.append(env_tree(Settings, variables, label))

    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _deep_merge(merged, data)
    for tree in trees:
        merged = _deep_merge(merged, tree.data)
    try:
        settings = validate_settings(merged)
    except SettingsInvalid as exc:
        raise ConfigError(_describe_errors(exc.errors, layers, trees)) from exc

    settings._environ = {**dotenv, **env}
    settings._sources = tuple(name for name, _ in layers)
    settings._profile = profile
    return settings


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings for a command line's ``--config`` / ``--profile`` (both optional): every
    subcommand, wherever it is registered, loads them the same way."""
    return load_settings(getattr(args, "config", None), getattr(args, "profile", None))
