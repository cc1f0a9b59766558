"""Secrets in the app's life: fail-fast startup, rotation of API keys, the ``check`` preflight."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from aiservice import Settings, create_app
from aiservice.cli import main
from aiservice.runtime import StartupError
from tests.conftest import app_client

MakeSettings = Callable[..., Settings]


async def test_startup_fails_fast_naming_the_unresolvable_reference(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    missing = f"secret://file{tmp_path}/not-mounted"
    settings = make_settings(
        {"auth": {"api_keys": ["secret://env/GOOD_KEY", missing]}},
        {"GOOD_KEY": "good-key-value"},
    )
    app = create_app(settings, configure_logs=False)
    with pytest.raises(StartupError) as info:
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not start with an unresolvable secret")
    message = str(info.value)
    assert missing in message and "does not exist" in message
    assert "secret://env/GOOD_KEY" not in message  # only failures are listed
    assert "good-key-value" not in message


async def test_rotated_api_key_is_accepted_without_restart(
    tmp_path: Path, make_settings: MakeSettings
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("key-before-rotation\n")
    settings = make_settings(
        {
            "auth": {"api_keys": [f"secret://file{key_file}"]},
            "metrics": {"require_auth": True},
            "secrets": {"ttl": 0},  # every use re-reads the mounted file
        }
    )
    async with app_client(settings) as client:
        assert (
            await client.get("/metrics", headers={"X-API-Key": "key-before-rotation"})
        ).is_success
        key_file.write_text("key-after-rotation\n")
        old = await client.get("/metrics", headers={"X-API-Key": "key-before-rotation"})
        assert old.status_code == 401
        new = await client.get("/metrics", headers={"X-API-Key": "key-after-rotation"})
        assert new.is_success


def test_check_lists_each_reference_with_status_and_never_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mounted").write_text("file-secret-value\n")
    config = tmp_path / "service.yaml"
    refs = {
        "env": "secret://env/CHECK_TEST_API_KEY",
        "file": f"secret://file{tmp_path}/mounted",
        "missing": f"secret://file{tmp_path}/missing",
    }
    config.write_text(yaml.safe_dump({"auth": {"api_keys": list(refs.values())}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECK_TEST_API_KEY", "env-secret-value")

    assert main(["check", "--config", str(config), "--json"]) == 1
    out = capsys.readouterr().out
    rows = {row["check"]: row for row in json.loads(out)}
    assert rows[f"secret {refs['env']}"]["status"] == "ok"
    assert rows[f"secret {refs['env']}"]["detail"] == "resolved"
    assert rows[f"secret {refs['file']}"]["status"] == "ok"
    assert rows[f"secret {refs['missing']}"]["status"] == "fail"
    assert "does not exist" in rows[f"secret {refs['missing']}"]["detail"]
    assert "env-secret-value" not in out and "file-secret-value" not in out

    assert main(["check", "--config", str(config)]) == 1
    table = capsys.readouterr().out
    assert refs["missing"] in table and "env-secret-value" not in table
