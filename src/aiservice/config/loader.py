"""Loading settings: built-in defaults < YAML file < profile overlay < ``.env`` < environment.

This is the only module that reads the process environment. Everything else receives a
:class:`Settings` instance (and, for ``secret://env/...`` references, the environment
snapshot it carries).

* YAML file: ``--config PATH``, else ``AISERVICE_CONFIG``, else ``./aiservice.yaml`` if present.
* Profile: ``--profile NAME`` or ``AISERVICE_ENV`` selects ``config/NAME.yaml`` (next to the
  YAML file, else in the working directory), deep-merged over the file.
* Environment: ``AISERVICE_<SECTION>__<KEY>=value`` (values may be JSON for lists/maps).

Any string value may be a secret reference (``secret://env/NAME``); references are kept as
written here and resolved by :mod:`aiservice.secrets` so they are never logged.

Invalid input raises :class:`~aiservice.errors.ConfigError` naming the file (or variable)
and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .settings import ENV_PREFIX, Settings, _env_layers, _yaml_layers

DEFAULT_CONFIG_FILE = "aiservice.yaml"


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
    from dotenv import dotenv_values  # shipped with pydantic-settings

    if not path.is_file():
        return {}
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


def _env_name_for(path: tuple[str | int, ...], env: Mapping[str, str]) -> str | None:
    upper = {k.upper() for k in env}
    parts = [str(p).upper() for p in path if not isinstance(p, int)]
    for depth in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:depth])
        if name in upper:
            return name
    return None


def _describe_errors(
    exc: ValidationError,
    layers: Sequence[tuple[str, dict[str, Any]]],
    env_layers: Sequence[tuple[str, Mapping[str, str]]],
) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p != "global_") or ("<root>",)
        key = ".".join(str(p) for p in loc)
        source = "defaults"
        for name, env in reversed(env_layers):
            var = _env_name_for(loc, env)
            if var:
                source = f"{name} variable {var}"
                break
        else:
            for name, data in reversed(layers):
                if _has_path(data, loc) or (len(loc) > 1 and _has_path(data, loc[:-1])):
                    source = name
                    break
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {message}")
    return "\n  ".join(lines)


def _reject_unknown_sections(origin: str, mapping: Mapping[str, str]) -> None:
    """A typo such as ``AISERVICE_CAHCE__TTL`` would otherwise be ignored silently."""
    known = set(Settings.model_fields)
    for name in mapping:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX):
            section = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in known:
                raise ConfigError(
                    f"unknown section {section!r} (known: {', '.join(sorted(known))})",
                    source=f"{origin} variable {name}",
                    key=section,
                )


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
    # AISERVICE_CONFIG / AISERVICE_ENV select files; they are not settings keys.
    selectors = {ENV_PREFIX + "CONFIG", ENV_PREFIX + "ENV"}
    env_for_settings = {k: v for k, v in env.items() if k.upper() not in selectors}
    # PORT is the platform convention (Cloud Run, Heroku, Lambda Web Adapter).
    if "PORT" in env and ENV_PREFIX + "SERVER__PORT" not in {k.upper() for k in env}:
        env_for_settings[ENV_PREFIX + "SERVER__PORT"] = env["PORT"]
    dotenv_for_settings = {k: v for k, v in dotenv.items() if k.upper() not in selectors}

    for origin, mapping in ((".env", dotenv_for_settings), ("environment", env_for_settings)):
        _reject_unknown_sections(origin, mapping)

    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _deep_merge(merged, data)
    env_layers = [(".env", dotenv_for_settings), ("environment", env_for_settings)]
    yaml_token = _yaml_layers.set((merged,))
    env_token = _env_layers.set(tuple(m for _, m in env_layers))
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc, layers, env_layers)) from exc
    finally:
        _yaml_layers.reset(yaml_token)
        _env_layers.reset(env_token)

    settings._environ = {**dotenv, **env}
    settings._sources = tuple(name for name, _ in layers)
    settings._profile = profile
    return settings
