"""The app factory's HTTP behaviour: envelopes, limits, request ids, auth, CORS, health."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from aiservice import Settings, create_app, get_runtime
from aiservice.api.deps import CallerPrincipal
from aiservice.errors import RateLimitError

from ..conftest import JsonLogCapture, MakeSettings


class Item(BaseModel):
    name: str
    count: int


def _probe_router() -> APIRouter:
    """Routes that exercise body parsing, auth and failures the way capabilities do."""
    router = APIRouter()

    @router.post("/probe/items/{item_id}")
    async def create(item_id: int, item: Item, principal: CallerPrincipal) -> dict[str, Any]:
        return {"id": item_id, "name": item.name, "caller": principal.name}

    @router.get("/probe/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.get("/probe/limited")
    async def limited() -> None:
        raise RateLimitError("slow down", headers={"Retry-After": "3"})

    return router


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, configure_logs=False)
    app.include_router(_probe_router())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"]
    return dict(error)


async def test_health_live_ready_and_openapi(make_settings: MakeSettings) -> None:
    async with serve(make_settings()) as client:
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"
        assert (await client.get("/health")).json()["status"] == "ok"
        spec = (await client.get("/openapi.json")).json()
        assert "/health/live" in spec["paths"]
        assert (await client.get("/docs")).status_code == 200


async def test_readiness_is_503_when_a_required_dependency_fails(
    make_settings: MakeSettings,
) -> None:
    app = create_app(make_settings(), configure_logs=False)

    async def broken() -> None:
        raise ConnectionError("db down")

    async def fine() -> None:
        return None

    async with app.router.lifespan_context(app):
        health = get_runtime(app).health
        health.add("optional-thing", broken, required=False)
        health.add("fine", fine)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            degraded = await client.get("/health/ready")
            assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
            health.add("database", broken, required=True)
            failed = await client.get("/health/ready")
    body = failed.json()
    assert failed.status_code == 503 and body["status"] == "fail"
    assert body["checks"]["database"]["status"] == "fail"
    assert "db down" in body["checks"]["database"]["detail"]
    assert body["checks"]["fine"]["status"] == "ok"
    assert isinstance(body["checks"]["fine"]["latency_ms"], float)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/health/live", {}, 405),
        (
            "POST",
            "/probe/items/1",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
        ),
        ("POST", "/probe/items/1", {"json": {"name": "x"}}, 422),
        ("POST", "/probe/items/abc", {"json": {"name": "x", "count": 1}}, 422),
        (
            "POST",
            "/probe/items/1",
            {"content": b"name=x", "headers": {"content-type": "text/plain"}},
            422,
        ),
        ("GET", "/probe/limited", {}, 429),
    ],
)
async def test_every_client_error_uses_the_envelope(
    make_settings: MakeSettings, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    async with serve(make_settings()) as client:
        assert_envelope(await client.request(method, path, **kwargs), status)


async def test_validation_error_names_the_field(make_settings: MakeSettings) -> None:
    async with serve(make_settings()) as client:
        error = assert_envelope(await client.post("/probe/items/1", json={"name": "x"}), 422)
    assert error["param"] == "count"
    assert "count" in error["message"]


async def test_rate_limit_error_keeps_its_retry_after_header(make_settings: MakeSettings) -> None:
    async with serve(make_settings()) as client:
        response = await client.get("/probe/limited")
    assert response.headers["retry-after"] == "3"


async def test_unhandled_exception_is_a_500_envelope_without_internals(
    make_settings: MakeSettings, json_logs: JsonLogCapture
) -> None:
    async with serve(make_settings()) as client:
        response = await client.get("/probe/boom", headers={"x-request-id": "req-boom"})
    error = assert_envelope(response, 500)
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert error["type"] == "server_error"
    logged = [r for r in json_logs.records if "exc_info" in r]
    assert logged and "secret internals" in logged[0]["exc_info"]
    assert logged[0]["request_id"] == "req-boom"


async def test_body_over_limit_is_413_from_content_length_and_from_a_stream(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings({"limits": {"max_body_bytes": 64}})
    big = json.dumps({"name": "x" * 200, "count": 1}).encode()
    chunks_sent = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        for start in range(0, len(big), 16):
            chunks_sent += 1
            yield big[start : start + 16]

    async with serve(settings) as client:
        assert_envelope(await client.post("/probe/items/1", content=big), 413)
        streamed = await client.post(
            "/probe/items/1", content=chunked(), headers={"content-type": "application/json"}
        )
        assert_envelope(streamed, 413)
        ok = await client.post("/probe/items/1", json={"name": "x", "count": 1})
    assert ok.status_code == 200
    assert chunks_sent <= 6  # refused at the crossing, not after the whole body


@pytest.mark.parametrize(
    ("headers", "expect"),
    [
        ({"x-request-id": "abc-123"}, "abc-123"),
        (
            {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ),
        ({"x-request-id": "x" * 129}, None),
        ({"x-request-id": "bad id\twith tab"}, None),
        ({}, None),
    ],
)
async def test_request_id_is_echoed_taken_from_traceparent_or_generated(
    make_settings: MakeSettings,
    json_logs: JsonLogCapture,
    headers: dict[str, str],
    expect: str | None,
) -> None:
    async with serve(make_settings()) as client:
        response = await client.get("/health/live", headers=headers)
    request_id = response.headers["x-request-id"]
    if expect is None:
        assert len(request_id) == 32 and request_id not in headers.values()
    else:
        assert request_id == expect
    access = [r for r in json_logs.records if r.get("path") == "/health/live"]
    assert access[-1]["request_id"] == request_id
    if "traceparent" in headers:
        assert access[-1]["trace_id"] == expect


async def test_api_keys_bearer_or_header_constant_time_and_secret_refs(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(
        {"auth": {"api_keys": ["literal-key-0000001", "secret://env/ROTATING_KEY"]}},
        environ={"ROTATING_KEY": "from-env-key-0000001"},
    )
    body = {"name": "n", "count": 1}
    async with serve(settings) as client:
        missing = assert_envelope(await client.post("/probe/items/1", json=body), 401)
        assert missing["code"] == "missing_api_key"
        wrong = await client.post("/probe/items/1", json=body, headers={"x-api-key": "nope"})
        assert assert_envelope(wrong, 401)["code"] == "invalid_api_key"
        bearer = await client.post(
            "/probe/items/1", json=body, headers={"authorization": "Bearer literal-key-0000001"}
        )
        header = await client.post(
            "/probe/items/1", json=body, headers={"x-api-key": "from-env-key-0000001"}
        )
        public = await client.get("/health/ready")
    assert bearer.json()["caller"] == "key-0"
    assert header.json()["caller"] == "key-1"
    assert public.status_code == 200  # health stays public


async def test_no_keys_runs_open_and_warns_once(
    make_settings: MakeSettings, json_logs: JsonLogCapture
) -> None:
    from aiservice.observability import logging as obs_logging

    obs_logging._warned.discard("auth-open")
    async with serve(make_settings()) as client:
        for _ in range(3):
            response = await client.post("/probe/items/1", json={"name": "n", "count": 1})
            assert response.json()["caller"] == "anonymous"
    warnings = [r for r in json_logs.records if "no API keys configured" in r["message"]]
    assert len(warnings) == 1 and warnings[0]["severity"] == "WARNING"


async def test_admin_routes_are_denied_without_admin_keys(make_settings: MakeSettings) -> None:
    from aiservice.errors import PermissionDeniedError
    from aiservice.secrets.base import SecretResolver
    from aiservice.security.apikeys import KeyStore

    settings = make_settings(
        {"auth": {"api_keys": ["user-key-000000001"], "admin_keys": ["admin-key-00000001"]}}
    )
    keys = KeyStore(settings, SecretResolver(settings))
    assert (await keys.authenticate_admin("admin-key-00000001")).admin
    with pytest.raises(PermissionDeniedError):
        await keys.authenticate_admin("user-key-000000001")
    open_settings = make_settings()
    with pytest.raises(PermissionDeniedError, match="admin_keys"):
        await KeyStore(open_settings, SecretResolver(open_settings)).authenticate_admin(None)


async def test_cors_allowlist(make_settings: MakeSettings) -> None:
    settings = make_settings({"cors": {"allowed_origins": ["https://app.example"]}})
    preflight = {"access-control-request-method": "POST"}
    async with serve(settings) as client:
        allowed = await client.options(
            "/health/live", headers={"origin": "https://app.example", **preflight}
        )
        denied = await client.options(
            "/health/live", headers={"origin": "https://evil.example", **preflight}
        )
        simple = await client.get("/health/live", headers={"origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example"


async def test_metrics_label_routes_by_template_not_raw_path(make_settings: MakeSettings) -> None:
    async with serve(make_settings()) as client:
        for item in (101, 202):
            await client.post(f"/probe/items/{item}", json={"name": "n", "count": 1})
        text = (await client.get("/metrics")).text
    assert 'route="/probe/items/{item_id}"' in text
    assert "/probe/items/101" not in text
    assert "aiservice_http_request_duration_seconds_bucket" in text
    assert "aiservice_build_info" in text


async def test_metrics_can_require_auth(make_settings: MakeSettings) -> None:
    settings = make_settings(
        {"auth": {"api_keys": ["metrics-key-0000001"]}, "metrics": {"require_auth": True}}
    )
    async with serve(settings) as client:
        assert_envelope(await client.get("/metrics"), 401)
        assert (
            await client.get("/metrics", headers={"x-api-key": "metrics-key-0000001"})
        ).status_code == 200


async def test_metrics_can_be_disabled(make_settings: MakeSettings) -> None:
    async with serve(make_settings({"metrics": {"enabled": False}})) as client:
        assert_envelope(await client.get("/metrics"), 404)


async def test_mounted_app_starts_its_runtime_on_first_request(
    make_settings: MakeSettings,
) -> None:
    inner = create_app(make_settings(), configure_logs=False)
    outer = FastAPI()
    outer.mount("/ai", inner)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://t"
    ) as client:
        response = await client.get("/ai/health/ready")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert get_runtime(inner).started


async def test_unresolvable_secret_fails_startup_naming_the_reference(
    make_settings: MakeSettings,
) -> None:
    from aiservice.runtime import StartupError

    settings = make_settings({"auth": {"api_keys": ["secret://env/NOT_SET_ANYWHERE"]}})
    app = create_app(settings, configure_logs=False)
    with pytest.raises(StartupError, match="secret://env/NOT_SET_ANYWHERE"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    "key", ["changeme", "CHANGE_ME-0123456789", "your-api-key", "${API_KEY}", "sk-...", "abc"]
)
async def test_runtime_refuses_placeholder_and_short_keys(
    make_settings: MakeSettings, key: str
) -> None:
    from aiservice.runtime import StartupError

    settings = make_settings(
        {
            "auth": {
                "api_keys": ["a-real-key-0123456789"],
                "keys": {"ci": {"key": "secret://env/K"}},
            }
        },
        {"K": key},
    )
    app = create_app(settings, configure_logs=False)
    with pytest.raises(StartupError) as info:
        async with app.router.lifespan_context(app):
            pytest.fail("the app must not start with a placeholder key")
    assert "auth.keys.ci.key (from secret://env/K)" in str(info.value)
    assert key not in str(info.value).replace("secret://env/K", "")
