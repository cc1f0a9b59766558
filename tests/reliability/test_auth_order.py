"""Authentication comes before the body: no key means 401, whatever the body is.

The protected routes are enumerated from the app itself, so a route added later is
covered without editing this test.
"""

from __future__ import annotations

import re

import httpx
import pytest

from aiservice import create_app
from aiservice.api.deps import api_routes, route_protection
from aiservice.api.routing import JsonRoute
from aiservice.security.auth_gate import Protection

from ..conftest import MakeSettings
from .conftest import CLIENT_KEY, edge_config

BODIES = {
    "garbage": b"\xff\x00{{{not json",
    "deep": b"[" * 100_000,
    "oversized": b"x" * (2 * 1024 * 1024),  # over the 1 MiB limit
    "surrogate": b'{"model": "\\ud800"}',
}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_every_protected_route_answers_401_before_reading_the_body(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = make_settings(edge_config(edge_function_url))
    app = create_app(settings, configure_logs=False)
    protected = [
        (context.path_format, sorted(context.methods or ()), route_protection(route, settings))
        for context, route in api_routes(app.routes)
        if route_protection(route, settings) is not Protection.PUBLIC
    ]
    paths = {p for p, _, _ in protected}
    assert {
        "/v1/chat/completions",
        "/admin/models/pull",
        "/metrics",
        "/orchestrate/{flow}",
    } <= paths
    sent = 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path, methods, level in protected:
                for method in methods:
                    for name, body in BODIES.items():
                        for auth in ({}, {"authorization": "Bearer wrong"}):
                            response = await client.request(
                                method,
                                _concrete(path),
                                content=body,
                                headers={"content-type": "application/json", **auth},
                            )
                            sent += 1
                            where = f"{method} {path} {name} {auth}"
                            assert response.status_code == 401, where
                            assert response.json()["error"]["type"] == "authentication_error"
                            assert response.headers["connection"] == "close", where
                # A client key on an admin route: 403, still before the body.
                if level is Protection.ADMIN:
                    response = await client.post(
                        _concrete(path),
                        content=BODIES["oversized"],
                        headers={"x-api-key": CLIENT_KEY},
                    )
                    assert response.status_code == 403
    print(f"auth order: {sent} unauthenticated requests on {len(protected)} routes, all 401")


@pytest.mark.parametrize("require_auth", [True, False])
async def test_metrics_protection_follows_the_setting(
    make_settings: MakeSettings, edge_function_url: str, require_auth: bool
) -> None:
    config = edge_config(edge_function_url, metrics={"require_auth": require_auth})
    app = create_app(make_settings(config), configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        anonymous = await client.get("/metrics")
        keyed = await client.get("/metrics", headers={"x-api-key": CLIENT_KEY})
    assert anonymous.status_code == (401 if require_auth else 200)
    assert keyed.status_code == 200


async def test_public_routes_need_no_key(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    app = create_app(make_settings(edge_config(edge_function_url)), configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/health/live", "/openapi.json"):
            assert (await client.get(path)).status_code == 200


def test_every_api_route_parses_bodies_strictly(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    """A router created without ``route_class=JsonRoute`` would skip the JSON guard."""
    app = create_app(make_settings(edge_config(edge_function_url)), configure_logs=False)
    routes = api_routes(app.routes)
    assert len(routes) >= 10
    assert all(isinstance(route, JsonRoute) for _, route in routes), [
        context.path_format for context, route in routes if not isinstance(route, JsonRoute)
    ]
