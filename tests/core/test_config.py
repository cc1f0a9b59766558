"""Settings layering and the errors a user sees for bad configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiservice.config import load_settings, redacted_dump
from aiservice.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file_expose_the_fake_model(tmp_path: Path) -> None:
    settings = load_settings(environ={}, dotenv_file=None, cwd=tmp_path)
    assert settings.sources == ()
    assert settings.providers["fake"].type == "fake"
    assert [d.model for d in settings.models["fake"]] == ["fake"]
    assert settings.cache.backend == "memory"
    assert settings.limits.max_body_bytes == 1024 * 1024


def test_priority_defaults_file_profile_dotenv_environment(tmp_path: Path) -> None:
    write(tmp_path / "aiservice.yaml", "cache: {ttl: 10, namespace: file, max_entries: 5}\n")
    write(tmp_path / "config/prod.yaml", "cache: {ttl: 20, namespace: profile}\n")
    write(tmp_path / ".env", "AISERVICE_CACHE__NAMESPACE=dotenv\nOTHER=1\n")
    settings = load_settings(
        profile="prod",
        environ={"AISERVICE_CACHE__TTL": "30"},
        cwd=tmp_path,
    )
    assert settings.cache.ttl == 30  # environment beats everything
    assert settings.cache.namespace == "dotenv"  # .env beats the profile
    assert settings.cache.max_entries == 5  # file value kept where nothing overrides it
    assert settings.profile == "prod"
    assert settings.sources == (
        str(tmp_path / "aiservice.yaml"),
        str(tmp_path / "config/prod.yaml"),
    )
    assert settings.environ["OTHER"] == "1"  # .env feeds secret://env/ references


def test_config_file_from_environment_and_profile_from_aiservice_env(tmp_path: Path) -> None:
    cfg = write(tmp_path / "conf/main.yaml", "service: {name: from-file}\n")
    write(tmp_path / "conf/config/dev.yaml", "service: {name: from-dev}\n")
    settings = load_settings(
        environ={"AISERVICE_CONFIG": str(cfg), "AISERVICE_ENV": "dev"},
        dotenv_file=None,
        cwd=tmp_path,
    )
    assert settings.service.name == "from-dev"


def test_nested_env_values_accept_json(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"AISERVICE_AUTH__API_KEYS": '["a-key", "b-key"]', "PORT": "9090"},
        dotenv_file=None,
        cwd=tmp_path,
    )
    assert settings.auth.api_keys == ["a-key", "b-key"]
    assert settings.server.port == 9090  # the platform's PORT convention


@pytest.mark.parametrize(
    ("file_text", "environ", "expected"),
    [
        ("cache: {ttll: 3}\n", {}, ["aiservice.yaml", "cache.ttll", "unknown key"]),
        ("cache: {ttl: soon}\n", {}, ["aiservice.yaml", "cache.ttl", "valid integer"]),
        ("", {"AISERVICE_CACHE__TTL": "x"}, ["AISERVICE_CACHE__TTL", "cache.ttl"]),
        ("", {"AISERVICE_NOPE__X": "1"}, ["AISERVICE_NOPE__X", "unknown section 'nope'"]),
        ("cache: [1, 2\n", {}, ["aiservice.yaml", "line"]),
        ("- a list\n", {}, ["aiservice.yaml", "mapping"]),
        ("providers: {x: {type: openai, colour: red}}\n", {}, ["providers.x.colour"]),
    ],
)
def test_invalid_config_names_the_source_and_the_key(
    tmp_path: Path, file_text: str, environ: dict[str, str], expected: list[str]
) -> None:
    write(tmp_path / "aiservice.yaml", file_text)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, dotenv_file=None, cwd=tmp_path)
    for fragment in expected:
        assert fragment in str(info.value)


def test_missing_file_and_unknown_profile_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml", environ={}, dotenv_file=None)
    write(tmp_path / "config/dev.yaml", "{}\n")
    with pytest.raises(ConfigError, match=r"unknown profile 'staging' \(known: dev\)"):
        load_settings(profile="staging", environ={}, dotenv_file=None, cwd=tmp_path)


def test_redacted_dump_masks_literals_but_shows_references(tmp_path: Path) -> None:
    write(
        tmp_path / "aiservice.yaml",
        "auth: {api_keys: [plain-key-value, 'secret://env/API_KEY']}\n"
        "cache: {backend: redis, url: 'redis://user:hunter22@cache:6379/0'}\n"
        "providers: {openai: {type: openai, api_key: sk-live-123456}}\n",
    )
    dumped = redacted_dump(load_settings(environ={}, dotenv_file=None, cwd=tmp_path))
    assert dumped["auth"]["api_keys"] == ["***", "secret://env/API_KEY"]
    assert dumped["cache"]["url"] == "redis://user:***@cache:6379/0"
    assert dumped["providers"]["openai"]["api_key"] == "***"
    assert "hunter22" not in str(dumped) and "sk-live" not in str(dumped)
