"""The app's request path outside the routes: FastAPI's outer layers skipped for HTTP, the
error boundary, and the collector settled once startup is done."""

from __future__ import annotations

import gc
from typing import Any

import httpx
import pytest
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

import aiservice.app as app_module
from aiservice import create_app, get_runtime
from aiservice.api.routing import ServiceApp
from aiservice.observability import context
from aiservice.observability.middleware import RequestContextMiddleware

from ..conftest import MakeSettings


def client(app: ASGIApp) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_http_enters_the_request_context_directly(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI's and Starlette's outer layers are not on an HTTP request's path."""
    outer_calls = 0
    original = ServerErrorMiddleware.__call__

    async def counting(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal outer_calls
        outer_calls += 1
        await original(self, scope, receive, send)

    monkeypatch.setattr(ServerErrorMiddleware, "__call__", counting)
    app = create_app(make_settings(), configure_logs=False)
    assert isinstance(app, ServiceApp)
    async with app.router.lifespan_context(app), client(app) as http:
        response = await http.get("/health/live")
    assert response.status_code == 200 and response.headers["x-request-id"]
    assert isinstance(app._front, RequestContextMiddleware)
    assert outer_calls == 0
    assert getattr(app, "_telemetry", {}).get("tracing") in (None, False)


async def test_a_middleware_added_later_keeps_fastapis_path(make_settings: MakeSettings) -> None:
    seen: list[str] = []

    class Outer:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope["type"])
            await self.app(scope, receive, send)

    app = create_app(make_settings(), configure_logs=False)
    app.add_middleware(Outer)
    async with app.router.lifespan_context(app), client(app) as http:
        response = await http.get("/health/live")
    assert response.status_code == 200 and "http" in seen
    assert app._front is None


# server.root_path is FastAPI's root_path, deprecated by FastAPI since (still honoured).
@pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning")
async def test_root_path_and_app_are_set_as_fastapi_sets_them(
    make_settings: MakeSettings,
) -> None:
    app = create_app(make_settings({"server": {"root_path": "/gw"}}), configure_logs=False)
    async with app.router.lifespan_context(app), client(app) as http:
        live = await http.get("/gw/health/live")
        models = await http.get("/gw/v1/models")  # reads the runtime from request.app
    assert live.status_code == 200
    assert models.status_code == 200 and models.json()["object"] == "list"


async def test_a_failure_in_the_request_context_itself_is_the_500_envelope(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No outer Starlette layer backs the boundary up any more: it covers its own work."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(context, "request_trace", broken)
    app = create_app(make_settings(), configure_logs=False)
    async with app.router.lifespan_context(app), client(app) as http:
        response = await http.get("/health/live")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert len(response.headers["x-request-id"]) == 32


@pytest.fixture
def gc_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What settle_gc does, recorded instead of done (the test process keeps its GC)."""
    calls: list[str] = []
    monkeypatch.setattr(app_module, "_gc_settled", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(f"threshold {t[0]}"))
    return calls


async def test_the_collector_is_settled_once_after_the_lifespan_startup(
    make_settings: MakeSettings, gc_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(make_settings(), configure_logs=False)
    runtime = get_runtime(app)
    started_when_frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: started_when_frozen.append(runtime.started))
    async with app.router.lifespan_context(app):
        pass
    assert started_when_frozen == [True]  # after every start hook, before the first request
    assert gc_calls == [f"threshold {app_module.GC_YOUNG_THRESHOLD}"]

    again = create_app(make_settings(), configure_logs=False)
    async with again.router.lifespan_context(again):
        pass
    assert started_when_frozen == [True]  # once per process


async def test_a_first_request_start_leaves_the_collector_alone(
    make_settings: MakeSettings, gc_calls: list[str]
) -> None:
    """Mounted without a lifespan, the app starts among requests: nothing to freeze then."""
    app = create_app(make_settings(), configure_logs=False)
    async with client(app) as http:
        assert (await http.get("/health/live")).status_code == 200
    assert get_runtime(app).started
    assert gc_calls == []
    await get_runtime(app).close()
