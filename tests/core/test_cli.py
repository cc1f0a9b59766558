"""The ``aiservice`` command: exit codes, check table, config show, serve."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aiservice.cli import main

from ..support.servers import free_port


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "aiservice", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("aiservice ")


def test_invalid_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text("limits: {max_body_bytes: -5}\n")
    result = run_cli(["check"], tmp_path)
    assert result.returncode == 2
    assert "aiservice.yaml" in result.stderr and "limits.max_body_bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_profile_exits_2(tmp_path: Path) -> None:
    result = run_cli(["config", "show", "--profile", "nope"], tmp_path)
    assert result.returncode == 2 and "unknown profile 'nope'" in result.stderr


def test_check_lists_secrets_and_fails_on_unresolvable(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text(
        "auth: {api_keys: ['secret://env/GOOD_KEY', 'secret://env/MISSING_KEY']}\n"
    )
    result = run_cli(["check"], tmp_path, {"GOOD_KEY": "value-never-printed"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL"]
    good = next(line for line in lines if "GOOD_KEY" in line)
    missing = next(line for line in lines if "MISSING_KEY" in line)
    assert " ok " in good and " fail " in missing
    assert "value-never-printed" not in result.stdout


def test_check_passes_on_defaults(tmp_path: Path) -> None:
    result = run_cli(["check", "--json"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "ok"' in result.stdout


def test_config_show_redacts_literal_secrets(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text("auth: {api_keys: [literal-secret-key]}\n")
    result = run_cli(["config", "show", "--format", "json"], tmp_path)
    assert result.returncode == 0
    assert "literal-secret-key" not in result.stdout and '"***"' in result.stdout


def test_serve_honours_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiservice", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.headers["x-request-id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert proc.returncode in (0, -signal.SIGTERM)
    json_lines = [line for line in output.splitlines() if line.startswith("{")]
    assert any('"path": "/health/live"' in line for line in json_lines)
    assert any("Uvicorn running on" in line for line in json_lines)  # uvicorn's own record
    assert "color_message" not in output and "\\u001b" not in output


@pytest.mark.parametrize(
    ("config", "env", "path"),
    [
        ("auth: {api_keys: [REPLACE_ME]}\n", {}, "auth.api_keys[0]"),
        ("auth: {admin_keys: ['<your-api-key>']}\n", {}, "auth.admin_keys[0]"),
        ("auth: {keys: {ci: {key: 'secret://env/CI_KEY'}}}\n", {"CI_KEY": "short-9ch"}, "ci.key"),
        ("auth: {api_keys: [xxxxxxxxxxxxxxxxxxxx]}\n", {}, "auth.api_keys[0]"),
    ],
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_placeholder_or_short_api_keys_exit_2_naming_the_path(
    tmp_path: Path, config: str, env: dict[str, str], path: str, command: str
) -> None:
    (tmp_path / "aiservice.yaml").write_text(config)
    result = run_cli([command], tmp_path, {**env, "PORT": str(free_port())})
    assert result.returncode == 2, result.stdout + result.stderr
    assert path in result.stderr and "Traceback" not in result.stderr
    assert "short-9ch" not in result.stderr


def test_min_key_length_is_a_setting(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text("auth: {api_keys: [dev-key-1], min_key_length: 8}\n")
    assert run_cli(["check"], tmp_path).returncode == 0


@pytest.mark.slow
def test_serve_with_workers_gives_a_request_head_the_configured_deadline(tmp_path: Path) -> None:
    """uvicorn builds each worker's config itself: ``limits.body_timeout_seconds`` must still
    reach the bounded parser there (it used to fall back to 30 s)."""
    pytest.importorskip("httptools")  # the bounded parser; h11 has no head deadline of ours
    port = free_port()
    (tmp_path / "aiservice.yaml").write_text(
        "server: {host: 127.0.0.1}\nlimits: {body_timeout_seconds: 1}\n"
        "logging: {access_log: false}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiservice", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).is_success
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.stdout.read() if proc.stdout else "") from None
                time.sleep(0.2)
        answers = []
        for _ in range(4):  # connections spread over the workers
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: a")
                started = time.monotonic()
                sock.settimeout(10)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                answers.append((data, time.monotonic() - started))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    for data, elapsed in answers:
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), data
        assert json.loads(body)["error"]["code"] == "head_timeout"
        assert 0.8 < elapsed < 5, elapsed  # the configured second, not 30 s
