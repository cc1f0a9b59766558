"""Environment variables as people write them, and bad values of every setting.

Every bad value, from any variable or file, must end as one ConfigError naming where it
came from and the key: the CLI turns that into exit code 2 without a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import pytest
import yaml
from pydantic import BaseModel

from aiservice.cli import main
from aiservice.config import Settings, load_settings, redacted_dump
from aiservice.errors import ConfigError


def load(tmp_path: Path, environ: dict[str, str], text: str | None = None) -> Settings:
    if text is not None:
        (tmp_path / "aiservice.yaml").write_text(text)
    return load_settings(environ=environ, dotenv_file=None, cwd=tmp_path)


# -- the forms people write --------------------------------------------------------------


def test_lists_accept_comma_separated_values_and_json(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {
            "AISERVICE_CORS__ALLOWED_ORIGINS": "http://a, http://b",
            "AISERVICE_AUTH__API_KEYS": "k1-0123456789abcdef,k2-0123456789abcdef",
            "AISERVICE_ORCHESTRATOR__SSRF_ALLOWLIST": '["10.0.0.0/8", "internal.example"]',
            "AISERVICE_CORS__ALLOWED_METHODS": "",
        },
    )
    assert settings.cors.allowed_origins == ["http://a", "http://b"]
    assert settings.auth.api_keys == ["k1-0123456789abcdef", "k2-0123456789abcdef"]
    assert settings.orchestrator.ssrf_allowlist == ["10.0.0.0/8", "internal.example"]
    assert settings.cors.allowed_methods == []


def test_maps_accept_key_value_pairs_json_and_nested_variables(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {
            "AISERVICE_PROVIDERS__UP__TYPE": "openai",
            "AISERVICE_PROVIDERS__UP__HEADERS": "OpenAI-Organization=org-1, X-Team=a=b",
            "AISERVICE_DEPLOY__ENV": '{"FEATURE": "on"}',
            "AISERVICE_AUTH__KEYS__CI__KEY": "ci-0123456789abcdef",
            "AISERVICE_AUTH__KEYS__CI__LIMITS": '{"requests_per_minute": 5}',
            "AISERVICE_CORS": '{"max_age": 5, "allow_credentials": true}',
            "AISERVICE_CORS__MAX_AGE": "7",  # the nested variable refines the JSON one
        },
    )
    assert settings.providers["up"].headers == {"OpenAI-Organization": "org-1", "X-Team": "a=b"}
    assert settings.deploy.env == {"FEATURE": "on"}
    ci = settings.auth.keys["ci"]
    assert ci.key == "ci-0123456789abcdef" and ci.limits and ci.limits.requests_per_minute == 5
    assert settings.cors.max_age == 7 and settings.cors.allow_credentials is True


def test_environment_overrides_file_lists_and_keeps_the_rest(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {"AISERVICE_CORS__ALLOWED_ORIGINS": "http://env"},
        "cors: {allowed_origins: [http://file], max_age: 9}\n",
    )
    assert settings.cors.allowed_origins == ["http://env"]
    assert settings.cors.max_age == 9


@pytest.mark.parametrize("level", ["debug", "Warning", " info ", "warn"])
def test_log_levels_are_case_insensitive_in_env_and_yaml(tmp_path: Path, level: str) -> None:
    expected = "WARNING" if level.strip().lower().startswith("warn") else level.strip().upper()
    assert load(tmp_path, {"AISERVICE_LOGGING__LEVEL": level}).logging.level == expected
    from_file = load(tmp_path, {}, yaml.safe_dump({"logging": {"level": level, "format": "TEXT"}}))
    assert from_file.logging.level == expected and from_file.logging.format == "text"


def test_empty_value_unsets_an_optional_setting(tmp_path: Path) -> None:
    settings = load(tmp_path, {"AISERVICE_CACHE__URL": ""}, "cache: {url: 'redis://x'}\n")
    assert settings.cache.url is None


# -- errors a user sees ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"PORT": "abc"}, ["environment variable PORT", "server.port"]),
        ({"AISERVICE_AUTH__KEYS": "ci=abc"}, ["AISERVICE_AUTH__KEYS", "auth.keys", "JSON"]),
        ({"AISERVICE_PROVIDERS": "openai"}, ["AISERVICE_PROVIDERS", "'providers'"]),
        ({"AISERVICE_CORS__ALLOWED_ORIGINS": "[http://a"}, ["cors.allowed_origins", "JSON"]),
        ({"AISERVICE_DEPLOY__ENV": "A=1,B"}, ["AISERVICE_DEPLOY__ENV", "key=value"]),
        ({"AISERVICE_MODELS__GPT": "openai/gpt-4o"}, ["AISERVICE_MODELS__GPT", "models.gpt"]),
        ({"AISERVICE_PROVIDERS__X__TIMEOUT": "1"}, ["AISERVICE_PROVIDERS__X__TIMEOUT", "type"]),
        ({"AISERVICE_LIMITS__GLOBAL__REQUESTS_PER_MINUTE": "0"}, ["limits.global.requests"]),
    ],
)
def test_bad_variables_name_the_variable_and_the_key(
    tmp_path: Path, environ: dict[str, str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message
    assert "global_" not in message


def test_a_file_error_is_not_blamed_on_a_variable_setting_a_sibling(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"AISERVICE_CACHE": '{"namespace": "x"}'}, "cache: {ttl: 0}\n")
    assert f"{tmp_path / 'aiservice.yaml'}: cache.ttl" in str(info.value)
    assert "AISERVICE_CACHE" not in str(info.value)


def _cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_") and k != "PORT"}
    return {**env, **extra}


@pytest.mark.parametrize(
    "extra",
    [
        {"AISERVICE_CORS__ALLOWED_ORIGINS": "[oops"},
        {"AISERVICE_AUTH__KEYS": "not-json"},
        {"PORT": "abc"},
        {"AISERVICE_SERVER": "3"},
    ],
)
def test_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, extra: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiservice", "config", "show"],
        cwd=tmp_path,
        env=_cli_env(extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert next(iter(extra)) in line


def test_config_show_prints_documented_names_and_redacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aiservice.yaml").write_text(
        "limits: {global: {requests_per_minute: 100}}\n"
        "providers: {up: {type: openai, headers: {Authorization: Bearer hdr-secret-1}}}\n"
        "functions: {scorer: 'https://fn.example/run?key=url-secret-2&v=1'}\n"
        "secrets: {gcp_project: my-proj}\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("AISERVICE_") or k == "PORT"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AISERVICE_AUTH__API_KEYS", "env-secret-3-abcdefgh")
    assert main(["config", "show", "--format", "json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["limits"]["global"]["requests_per_minute"] == 100
    assert "global_" not in out
    for secret in ("hdr-secret-1", "url-secret-2", "env-secret-3"):
        assert secret not in out
    assert data["functions"]["scorer"] == "https://fn.example/run?key=***&v=1"
    assert data["secrets"]["gcp_project"] == "my-proj"  # where secrets live is not a secret
    # The dump is itself a valid configuration file.
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump(redacted_dump(load(tmp_path, {}))))
    assert load(tmp_path, {}).limits.global_.requests_per_minute == 100


# -- every setting, garbage in -----------------------------------------------------------


def _model(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model(members[0]) if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is dict:
        return _model(typing.get_args(annotation)[1])
    return None


def _leaves(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every setting path; map entries get the key ``x`` (``providers.x.type``)."""
    for name, info in model.model_fields.items():
        public = (info.serialization_alias or name,)
        path = prefix + public
        yield path
        inner = _model(info.annotation)
        if inner is not None:
            is_map = typing.get_origin(info.annotation) is dict
            yield from _leaves(inner, path + (("x",) if is_map else ()))


LEAVES = sorted(set(_leaves(Settings)))


def _names_the_key(message: str, path: tuple[str, ...]) -> bool:
    """The dotted key, or (a map entry created without its required fields, such as
    ``providers.x.timeout`` alone) the entry's missing field."""
    if ".".join(path) in message:
        return True
    entry = path[: path.index("x") + 1] if "x" in path else path
    return "Field required" in message and ".".join(entry) + "." in message


GARBAGE = ["}{ not json", "-1", "[1,", "a=b,c", "\u00e9\x01", "9" * 400, "[" * 5000]


def test_the_walk_covers_nested_sections() -> None:
    assert ("limits", "global", "requests_per_minute") in LEAVES
    assert ("providers", "x", "vertex", "project") in LEAVES
    assert ("aws_lambda", "events", "x", "match") in LEAVES
    assert len(LEAVES) > 120


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_in_any_variable_is_a_config_error_naming_it(tmp_path: Path, garbage: str) -> None:
    rejected = 0
    for path in LEAVES:
        var = "AISERVICE_" + "__".join(path).upper()
        try:
            load_settings(environ={var: garbage}, dotenv_file=None, cwd=tmp_path)
        except ConfigError as exc:
            rejected += 1
            message = str(exc)
            assert var in message, (path, message)
            assert _names_the_key(message, path), (path, message)
        # Anything else (SettingsError, TypeError, RecursionError...) fails the test.
    assert rejected > len(LEAVES) // 3


@pytest.mark.parametrize("garbage", [{"a": [1]}, "garbage", -1, [None], 1e309])
def test_garbage_in_any_file_key_is_a_config_error_naming_it(tmp_path: Path, garbage: Any) -> None:
    path_file = tmp_path / "aiservice.yaml"
    for path in LEAVES:
        data: Any = garbage
        for part in reversed(path):
            data = {part: data}
        path_file.write_text(yaml.safe_dump(data))
        try:
            load_settings(environ={}, dotenv_file=None, cwd=tmp_path)
        except ConfigError as exc:
            message = str(exc)
            assert "aiservice.yaml" in message, (path, message)
            assert _names_the_key(message, path), (path, message)
