"""The Cloud Functions adapter served by the real functions-framework process."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from .conftest import probe_app
from .procs import BIN, REPO, port_env, running

pytestmark = pytest.mark.slow


# The function source: the real adapter, plus one echo route so a test can prove that a
# request body streams through functions-framework into the app untouched.
ADAPTER = str(REPO / "adapters" / "gcp_functions.py")
SOURCE = f"""
import importlib.util
from fastapi import Request, Response

spec = importlib.util.spec_from_file_location("gcp_adapter", {ADAPTER!r})
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)


@adapter.app.post("/test/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type=request.headers["content-type"])


handle = adapter.handle
"""


@pytest.fixture(scope="module")
def function_url(tmp_path_factory: Any) -> Any:
    cwd = tmp_path_factory.mktemp("gcf")
    (cwd / "aiservice.yaml").write_text("logging: {access_log: false}\n")
    (cwd / "main.py").write_text(SOURCE)
    env = port_env(FUNCTION_USE_ASGI="true")
    argv = [
        str(BIN / "functions-framework"),
        "--source",
        str(cwd / "main.py"),
        "--target",
        "handle",
        "--host",
        "127.0.0.1",
        "--port",
        env["PORT"],
    ]
    with running(argv, env=env, cwd=cwd) as (base, _):
        yield base


def test_health_is_served_with_startup_done(function_url: str) -> None:
    """/health/ready is 200 only once the app's startup ran (functions-framework runs none)."""
    ready = httpx.get(f"{function_url}/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"
    assert httpx.get(f"{function_url}/health/live").json() == {"status": "ok"}


def test_unknown_path_gets_the_app_404_envelope(function_url: str) -> None:
    response = httpx.get(f"{function_url}/no/such/route", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["x-request-id"]  # the app's own middleware ran


def test_post_body_reaches_the_app(function_url: str) -> None:
    """Request bodies (binary included) reach the app through functions-framework unchanged."""
    payload = bytes(range(256)) * 64
    response = httpx.post(
        f"{function_url}/test/echo",
        content=payload,
        headers={"content-type": "application/octet-stream"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.content == payload


def test_method_errors_use_the_app_envelope(function_url: str) -> None:
    response = httpx.post(f"{function_url}/health/live", json={"x": 1}, timeout=10)
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_openapi_schema_lists_the_app_routes(function_url: str) -> None:
    schema = httpx.get(f"{function_url}/openapi.json", timeout=10).json()
    assert "/health/ready" in schema["paths"]


async def test_pubsub_target_dispatches_queue_messages() -> None:
    """The CloudEvent target decodes Pub/Sub data and routes it by kind."""
    from cloudevents.http import CloudEvent
    from fastapi import FastAPI

    from aiservice.platforms.events import MESSAGE_HANDLERS
    from aiservice.platforms.gcp_functions import pubsub_function

    seen: list[dict[str, Any]] = []

    async def handler(runtime: Any, message: dict[str, Any]) -> None:
        seen.append({"runtime": runtime, **message})

    MESSAGE_HANDLERS.add("test.pubsub", handler)
    target = pubsub_function(FastAPI(), "rt")
    data = base64.b64encode(json.dumps({"kind": "test.pubsub", "n": 3}).encode()).decode()
    attrs = {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub"}
    await target(CloudEvent(attrs, {"message": {"data": data}}))
    assert seen == [{"runtime": "rt", "kind": "test.pubsub", "n": 3}]


async def test_target_starts_the_app_once_and_hides_the_framework_scope() -> None:
    """Startup runs on the first request only; functions-framework's routing keys
    ("router", "endpoint", ...) never reach the wrapped app."""
    from aiservice.platforms.gcp_functions import gcp_function

    calls: dict[str, int] = {}
    seen: list[dict[str, Any]] = []
    app = probe_app(calls)

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(dict(scope))  # the app adds its own routing keys later
        await app(scope, receive, send)

    target = gcp_function(spy)
    first, second = await target(None), await target(None)
    assert calls == {"startup": 1}
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
        "router": object(),
        "endpoint": object(),
        "path_params": {"path": "x"},
    }
    await second(scope, receive, send)
    assert first is second
    assert messages[0]["status"] == 200
    assert not {"router", "endpoint", "path_params"} & set(seen[0])
    assert json.loads(messages[1]["body"])["state"] == "lifespan"
