"""The shared-state capability: built once per app, fail-open, typed accessors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiservice import Settings, create_app
from aiservice.app import get_runtime
from aiservice.cache import get_state
from aiservice.cache.failopen import FailOpenBackend
from aiservice.cache.memory import MemoryBackend
from aiservice.cache.state import get_rate_limiter
from aiservice.llm.cache import get_response_cache
from aiservice.runtime import Runtime, StartupError
from tests.conftest import app_client


async def test_default_app_shares_a_fail_open_memory_backend() -> None:
    app = create_app(Settings(), configure_logs=False)
    async with app.router.lifespan_context(app):
        runtime = get_runtime(app)
        state = get_state(runtime)
        assert isinstance(state, FailOpenBackend) and isinstance(state.inner, MemoryBackend)
        await state.set("k", b"v")
        assert await state.get("k") == b"v"
        assert get_response_cache(runtime).backend is state
        assert get_rate_limiter(runtime).backend is state


async def test_readiness_reports_the_cache_as_a_non_required_check() -> None:
    async with app_client(Settings()) as client:
        body = (await client.get("/health/ready")).json()
    assert body["checks"]["cache"] == {
        "status": "ok",
        "required": False,
        "latency_ms": body["checks"]["cache"]["latency_ms"],
    }


async def test_unknown_backend_fails_startup_naming_the_key() -> None:
    app = create_app(Settings(cache={"backend": "nosuch"}), configure_logs=False)
    with pytest.raises(StartupError, match="cache.backend.*nosuch"):
        async with app.router.lifespan_context(app):
            pass


def test_accessor_before_start_explains_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="aiservice.cache.state"):
        get_state(Runtime(Settings()))


def test_importing_the_capability_pulls_no_backend_sdk() -> None:
    code = (
        "import sys, aiservice.cache.state, aiservice.llm.cache.calls, aiservice.cache.ratelimit;"
        "print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('redis', 'boto3', 'botocore'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
