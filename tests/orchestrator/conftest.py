"""Fixtures: a real ML-functions server on loopback and settings/clients for flows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from aiservice import Settings, create_app, get_runtime
from aiservice.runtime import Runtime

from ..conftest import MakeSettings
from ..support.servers import serve_app
from .support import Recorder, ml_app


@pytest.fixture(scope="module")
def _ml_server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serve_app(ml_app(recorder)) as url:
        yield url, recorder


@pytest.fixture
def ml(_ml_server: tuple[str, Recorder]) -> Iterator[tuple[str, Recorder]]:
    """``(base_url, recorder)``; the recorder is empty at the start of each test."""
    _ml_server[1].reset()
    yield _ml_server


FlowSettings = Callable[..., Settings]


@pytest.fixture
def flow_settings(make_settings: MakeSettings) -> FlowSettings:
    """Settings with the given flows (and extra config sections merged in)."""

    def make(
        flows: dict[str, Any], environ: dict[str, str] | None = None, **extra: Any
    ) -> Settings:
        orchestrator = {"default_step_timeout": 5.0, **extra.pop("orchestrator", {})}
        data = {"flows": flows, "orchestrator": orchestrator, **extra}
        return make_settings(data, environ)

    return make


@asynccontextmanager
async def orchestrator_app(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """The real app in-process (lifespan run), plus its runtime."""
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, get_runtime(app)


def step(base: str, name: str, **query: Any) -> dict[str, Any]:
    """A step calling the fake function ``name`` with failure-mode query parameters."""
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return {"url": f"{base}/fn/{name}" + (f"?{qs}" if qs else "")}


@pytest.fixture
def redis_cache() -> Iterator[dict[str, Any]]:
    """``cache`` settings for the real Redis on loopback, under a unique namespace."""
    import uuid

    import redis

    namespace = f"test-orch-{uuid.uuid4().hex[:12]}"
    yield {
        "backend": "redis",
        "url": "redis://127.0.0.1:6379/0",
        "namespace": namespace,
        "timeout_ms": 2000,
    }
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
