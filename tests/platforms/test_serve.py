"""The container adapter under a real uvicorn process: graceful SIGTERM, proxy headers."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .procs import REPO, port_env, running

pytestmark = pytest.mark.slow

# The real adapter plus two probe routes: a slow request and a "who am I" echo.
ADAPTER = str(REPO / "adapters" / "cloud_run.py")
SOURCE = f"""
import asyncio, importlib.util
from fastapi import Request

spec = importlib.util.spec_from_file_location("cloud_run", {ADAPTER!r})
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)


@adapter.app.get("/test/slow")
async def slow(seconds: float) -> dict:
    await asyncio.sleep(seconds)
    return {{"slept": seconds}}


@adapter.app.get("/test/whoami")
async def whoami(request: Request) -> dict:
    return {{"scheme": request.url.scheme, "client": request.client.host}}


adapter.main()
"""


def start(tmp_path: Path, **env: str) -> Any:
    (tmp_path / "main.py").write_text(SOURCE)
    (tmp_path / "aiservice.yaml").write_text("logging: {access_log: false}\n")
    environ = port_env(AISERVICE_SERVER__HOST="127.0.0.1", **env)
    return running([sys.executable, "main.py"], env=environ, cwd=tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: Any) -> Any:
    """One server for the tests that do not stop it."""
    with start(tmp_path_factory.mktemp("serve")) as started:
        yield started


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with start(tmp_path) as started:
        yield started


def test_sigterm_lets_the_in_flight_request_finish(server: Any) -> None:
    base, proc = server
    result: dict[str, Any] = {}

    def call() -> None:
        result["response"] = httpx.get(f"{base}/test/slow", params={"seconds": 2}, timeout=15)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.5)  # the request is now in flight
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    worker.join(timeout=15)
    assert result["response"].status_code == 200
    assert result["response"].json() == {"slept": 2}
    # uvicorn re-raises the signal once shut down cleanly: exit by SIGTERM, not SIGKILL.
    assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 10  # inside Cloud Run's window
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health/live", timeout=2)


def test_request_outliving_the_grace_gets_the_503_envelope(tmp_path: Path) -> None:
    """server.graceful_shutdown_seconds is honoured, and what is still running then gets
    a retryable JSON error, not uvicorn's plain-text 500."""
    with start(tmp_path, AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS="1") as (base, proc):
        result: dict[str, Any] = {}

        def call() -> None:
            result["response"] = httpx.get(f"{base}/test/slow", params={"seconds": 30}, timeout=15)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=15)
        elapsed = time.monotonic() - started
        response = result["response"]
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/json"
        assert response.headers["retry-after"] == "1"
        error = response.json()["error"]
        assert error["type"] == "service_unavailable" and error["code"] == "shutting_down"
        assert set(error) == {"message", "type", "code", "param"}
        assert 0.9 < elapsed < 3  # at the configured grace, not uvicorn's hard stop
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)


def test_proxy_headers_are_trusted(shared: Any) -> None:
    base, _ = shared
    seen = httpx.get(
        f"{base}/test/whoami",
        headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"},
        timeout=5,
    ).json()
    assert seen == {"scheme": "https", "client": "203.0.113.9"}


def test_startup_probe_and_readiness_answer(shared: Any) -> None:
    base, _ = shared
    assert httpx.get(f"{base}/health/live", timeout=5).status_code == 200
    assert httpx.get(f"{base}/health/ready", timeout=5).json()["status"] == "ok"


def test_container_defaults_bind_all_interfaces_on_8080() -> None:
    from aiservice.platforms.serve import uvicorn_config

    config = uvicorn_config(object())
    # The guard answers at 8 s; uvicorn's hard stop comes after the flush second.
    assert (config.host, config.port, config.timeout_graceful_shutdown) == ("0.0.0.0", 8080, 9.0)
    assert config.proxy_headers and config.forwarded_allow_ips == "*"


# `aiservice serve` (one process) runs on the same server: the CLI's app gets the probe route.
CLI_SOURCE = """
import asyncio, sys
import aiservice.app as app_module

create_app = app_module.create_app


def with_slow_route(*args, **kwargs):
    app = create_app(*args, **kwargs)

    @app.get("/test/slow")
    async def slow(seconds: float) -> dict:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    return app


app_module.create_app = with_slow_route
from aiservice.cli import main

sys.exit(main(["serve"]))
"""


def test_aiservice_serve_answers_the_503_envelope_at_the_end_of_the_grace(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(CLI_SOURCE)
    (tmp_path / "aiservice.yaml").write_text("logging: {access_log: false}\n")
    environ = port_env(AISERVICE_SERVER__GRACEFUL_SHUTDOWN_SECONDS="1")
    with running([sys.executable, "main.py"], env=environ, cwd=tmp_path) as (base, proc):
        result: dict[str, Any] = {}

        def call() -> None:
            result["response"] = httpx.get(f"{base}/test/slow", params={"seconds": 30}, timeout=15)

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(timeout=15)
        response = result["response"]
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "shutting_down"
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
