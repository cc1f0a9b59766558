"""Lambda SnapStart hooks: the app starts before the snapshot and is made unique after a restore.

A fresh process plays Lambda: it puts the stand-in ``snapshot_restore_py``
(tests/support/snapstart_runtime) first on the path, imports adapters/aws_lambda.py during a
``snap-start`` init, runs the before-snapshot hooks, keeps the random state as "the
snapshot", then restores it twice, serving API Gateway v2 events against real Redis.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import secrets
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from aiservice import create_app
from aiservice.app import get_runtime
from aiservice.config import Settings, load_settings
from aiservice.platforms import snapstart
from aiservice.platforms.aws_lambda import LambdaHandler, LifespanFailure, lambda_handler
from aiservice.runtime import Runtime
from aiservice.secrets.base import SecretResolver

from .conftest import EVENTS_DIR
from .procs import REPO, clean_env

STAND_IN_DIR = REPO / "tests" / "support" / "snapstart_runtime"
REDIS_URL = "redis://127.0.0.1:6379/0"

PROBE = """
import json, random, sys
cfg = json.loads(sys.argv[1])
sys.path.insert(0, cfg["adapters"])
import redis
import snapshot_restore_py as hooks

def app_connections():
    # The app's live Redis connections, by the client name its cache URL gives them.
    listed = redis.Redis.from_url(cfg["redis"]).client_list()
    return sorted(c["id"] for c in listed if c["name"] == cfg["client_name"])

def call(path, key=None):
    event = json.loads(open(cfg["event"]).read())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = "GET"
    event["rawQueryString"], event["queryStringParameters"] = "", {}
    event["headers"] = {"host": "api.example.com"}
    if key:
        event["headers"]["authorization"] = "Bearer " + key
    return aws_lambda.handler(event, None)["statusCode"]

random.seed(1234)  # init code that seeds, or simply a snapshot: same state everywhere
import aws_lambda
rt = aws_lambda.runtime
out = {
    "stand_in": getattr(hooks, "STAND_IN", False),
    "registered": [len(hooks.get_before_snapshot()), len(hooks.get_after_restore())],
    "started_at_import": rt.started,
}
hooks.run_before_snapshot()
out["started_before_snapshot"] = rt.started and aws_lambda.handler.app_lifespan.started
out["before_snapshot_status"] = call("/health/ready")
out["connections_before"] = app_connections()
fields = type(rt).__annotations__  # the capability fields: state, gateway...
built = {name: getattr(rt, name) for name in fields if getattr(rt, name) is not None}
out["built"] = sorted(built)
token = built["response_cache"].instance
snapshot = random.getstate()

def restore(run_hooks):
    random.setstate(snapshot)  # a new environment resumes from the same memory
    if run_hooks:
        hooks.run_after_restore()
    return [random.random() for _ in range(3)]

out["without_reseed"] = [restore(False), restore(False)]
open(cfg["key_file"], "w").write(cfg["new_key"])  # rotated while the snapshot waited
out["streams"] = [restore(True), restore(True)]
out["kept"] = sorted(k for k, v in built.items() if getattr(rt, k) is v)
out["token_changed"] = rt.response_cache.instance != token
out["statuses"] = {
    "ready": call("/health/ready"),
    "new_key": call("/v1/models", cfg["new_key"]),
    "old_key": call("/v1/models", cfg["old_key"]),
}
out["connections_after"] = app_connections()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def snapstart_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One publication and two restores, shared by the tests below (one process)."""
    tmp_path = tmp_path_factory.mktemp("snapstart")
    old_key, new_key = secrets.token_hex(16), secrets.token_hex(16)
    key_file = tmp_path / "client-key"
    key_file.write_text(old_key)
    client_name = f"snapstart-{uuid.uuid4().hex[:12]}"
    config = {
        "auth": {"api_keys": [f"secret://file/{key_file}"]},
        # A long TTL: only the restore hook can make the rotated key visible this soon.
        "secrets": {"ttl": 3600},
        "cache": {
            "backend": "redis",
            "url": f"{REDIS_URL}?client_name={client_name}",
            "namespace": client_name,
        },
    }
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump(config))
    cfg = {
        "adapters": str(REPO / "adapters"),
        "event": str(EVENTS_DIR / "apiGatewayProxyV2Event.json"),
        "redis": REDIS_URL,
        "client_name": client_name,
        "key_file": str(key_file),
        "old_key": old_key,
        "new_key": new_key,
    }
    env = clean_env(
        AISERVICE_CONFIG=str(tmp_path / "aiservice.yaml"),
        AISERVICE_LOGGING__ACCESS_LOG="false",
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
    )
    env["PYTHONPATH"] = f"{STAND_IN_DIR}:{env['PYTHONPATH']}"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(cfg)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_before_snapshot_starts_the_app_through_the_adapter(snapstart_run: dict[str, Any]) -> None:
    run = snapstart_run
    assert run["stand_in"] is True
    assert run["registered"] == [1, 1]
    assert run["started_at_import"] is False  # import stays light; the hook starts it
    assert run["started_before_snapshot"] is True
    assert run["before_snapshot_status"] == 200
    assert len(run["connections_before"]) >= 1  # a real Redis connection in the snapshot


@pytest.mark.slow
def test_each_restore_gets_its_own_random_stream(snapstart_run: dict[str, Any]) -> None:
    first, second = snapstart_run["without_reseed"]
    assert first == second  # the simulation is faithful: one snapshot, one stream
    restored_a, restored_b = snapstart_run["streams"]
    assert restored_a != restored_b
    assert first not in (restored_a, restored_b)


@pytest.mark.slow
def test_restore_rebuilds_clients_and_connections(snapstart_run: dict[str, Any]) -> None:
    run = snapstart_run
    # Every capability built before the snapshot was replaced.
    assert run["built"] == ["gateway", "limiter", "response_cache", "state"]
    assert run["kept"] == []
    assert run["token_changed"] is True  # per-instance ids are not shared by restores
    assert run["statuses"]["ready"] == 200  # Redis answers through the new connection
    before, after = set(run["connections_before"]), set(run["connections_after"])
    assert after and not before & after  # the snapshot's connections closed, new ones open


@pytest.mark.slow
def test_restore_re_resolves_secrets_whose_ttl_has_not_run_out(
    snapstart_run: dict[str, Any],
) -> None:
    assert snapstart_run["statuses"]["new_key"] == 200
    assert snapstart_run["statuses"]["old_key"] == 401


# ---- registration and hooks, in-process

SNAPSTART_INIT = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}


def _settings(tmp_path: Path, environ: dict[str, str], **config: Any) -> Settings:
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump(config))
    return load_settings(tmp_path / "aiservice.yaml", environ=environ, dotenv_file=None)


def _handler(settings: Settings) -> tuple[LambdaHandler, Runtime]:
    app = create_app(settings, configure_logs=False)
    runtime = get_runtime(app)
    return lambda_handler(app, runtime=runtime, install_signal_handlers=False), runtime


def _stand_in(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh stand-in (empty registries) where ``import snapshot_restore_py`` finds it."""
    path = STAND_IN_DIR / "snapshot_restore_py.py"
    spec = importlib.util.spec_from_file_location(snapstart.HOOKS_MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, snapstart.HOOKS_MODULE, module)
    return module


def test_nothing_is_registered_or_imported_outside_a_snapstart_init(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, snapstart.HOOKS_MODULE, raising=False)
    environ = {"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}
    handler, runtime = _handler(_settings(tmp_path, environ))
    try:
        assert snapstart.register(handler, runtime) is False
        assert snapstart.HOOKS_MODULE not in sys.modules
    finally:
        handler.close()


def test_a_snapstart_init_without_the_hooks_module_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, snapstart.HOOKS_MODULE, None)  # import raises
    handler, runtime = _handler(_settings(tmp_path, SNAPSTART_INIT))
    try:
        with caplog.at_level(logging.WARNING, logger="aiservice.platforms"):
            assert snapstart.register(handler, runtime) is False
        assert "python3.12" in caplog.text
    finally:
        handler.close()


def test_a_startup_failure_before_the_snapshot_fails_the_publication(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hooks = _stand_in(monkeypatch)
    missing = tmp_path / "no-such-key"
    settings = _settings(tmp_path, SNAPSTART_INIT, auth={"api_keys": [f"secret://file/{missing}"]})
    handler, runtime = _handler(settings)
    try:
        assert snapstart.register(handler, runtime) is True
        with pytest.raises(LifespanFailure, match="no-such-key"):
            hooks.run_before_snapshot()
        assert runtime.started is False
    finally:
        handler.close()


def test_expired_secrets_are_fetched_again_and_kept_when_the_store_fails(
    tmp_path: Path,
) -> None:
    key = tmp_path / "key"
    key.write_text("first")
    ref = f"secret://file/{key}"
    resolver = SecretResolver(_settings(tmp_path, {}, secrets={"ttl": 3600}))
    assert asyncio.run(resolver.resolve(ref)) == "first"
    key.write_text("second")
    assert asyncio.run(resolver.resolve(ref)) == "first"  # within its TTL
    resolver.expire_all()
    assert asyncio.run(resolver.resolve(ref)) == "second"
    key.unlink()
    resolver.expire_all()
    assert asyncio.run(resolver.resolve(ref)) == "second"  # last good value, not an error
