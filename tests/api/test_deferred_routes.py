"""A cold start answering the probe builds no API route; the first request for another
path includes every router, and the app then serves and protects them as before."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from aiservice import Settings, create_app
from aiservice.api.deferred_route import DeferredRoute
from aiservice.api.routing import JsonRoute
from aiservice.app import ROUTES_ONLY

KEY = "deferred-routes-client-key-0123456789"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings({"auth": {"api_keys": [KEY]}})
    return settings


def _built(route: Any) -> bool:
    return "_declaration" not in vars(route)


async def test_the_probe_leaves_the_api_routers_for_later(settings: Settings) -> None:
    app = create_app(settings, configure_logs=False)
    served = app.router.routes  # what the router matches on, without including anything
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/live")).json() == {"status": "ok"}
            assert len(app.router.routes) == len(served)
            assert app._deferred  # type: ignore[attr-defined]
            # A first model call (a cold start on real traffic) builds no other API either.
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {KEY}"},
            )
            assert chat.status_code == 200
            models = await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
            assert models.status_code == 200
            assert app._deferred  # type: ignore[attr-defined]
            # The gate built its table from the routes it saw: now it sees them all.
            assert (await client.get("/v1/responses/resp_x")).status_code == 401
            assert not app._deferred  # type: ignore[attr-defined]
            found = await client.get(
                "/v1/responses/resp_x", headers={"Authorization": f"Bearer {KEY}"}
            )
            assert found.status_code == 404


def test_listing_the_routes_includes_them(settings: Settings) -> None:
    app = create_app(settings, configure_logs=False)
    included = [r.original_router for r in app.routes if hasattr(r, "original_router")]
    assert not app._deferred  # type: ignore[attr-defined]
    assert ROUTES_ONLY <= set(sys.modules)
    paths = {r.path for router in included for r in router.routes}
    assert {"/health/live", "/v1/chat/completions", "/v1/messages", "/v1/responses"} <= paths


def test_a_route_is_built_on_first_use() -> None:
    router = APIRouter(route_class=JsonRoute)

    @router.get("/items")
    async def items(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    route = router.routes[0]
    assert isinstance(route, DeferredRoute) and not _built(route)
    assert (route.path, route.name) == ("/items", "items") and not _built(route)
    assert [p.name for p in route.dependant.query_params] == ["limit"] and _built(route)
