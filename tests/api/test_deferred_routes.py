"""A cold start answering the probe builds no API route; the first request under a
deferred router's prefixes includes that router only, a path no router claims includes
them all, and the app then serves, protects and lists them as if all were included at
once."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from aiservice import Settings, create_app
from aiservice.api.deferred_app import claims
from aiservice.api.deferred_route import DeferredRoute
from aiservice.api.routing import JsonRoute
from aiservice.app import CAPABILITIES, EAGER_ROUTERS, ROUTER_PREFIXES, ROUTES_ONLY

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
            # The gate built its table from the routes it saw: now it sees the new ones.
            assert (await client.get("/v1/responses/resp_x")).status_code == 401
            assert deferred(app) == set(ROUTER_PREFIXES) - {"aiservice.api.responses_api"}
            found = await client.get(
                "/v1/responses/resp_x", headers={"Authorization": f"Bearer {KEY}"}
            )
            assert found.status_code == 404
            auth = {"Authorization": f"Bearer {KEY}"}
            assert (await client.get("/v1/responses", headers=auth)).status_code == 405
            assert deferred(app) == set(ROUTER_PREFIXES) - {"aiservice.api.responses_api"}
            # A path no router claims: every router, so the answer is the app's real 404.
            assert (await client.get("/v1/nothing-here")).status_code == 404
            assert not app._deferred  # type: ignore[attr-defined]


def deferred(app: Any) -> set[str]:
    """The deferred routers' module names (each router known by its prefixes)."""
    names = {prefixes: name for name, prefixes in ROUTER_PREFIXES.items()}
    return {names[prefixes] for _, _, prefixes in app._deferred}


def _route_keys(app: Any) -> list[tuple[str, ...]]:
    """Each route's path and methods; an included router (FastAPI may keep one entry for a
    router and match inside it) as its routes' paths."""
    keys = []
    for r in app.routes:
        inner = getattr(r, "original_router", None)
        if inner is not None and not hasattr(r, "path"):
            keys.append(tuple(x.path for x in inner.routes))
        else:
            keys.append((r.path, *sorted(getattr(r, "methods", None) or ())))
    return keys


async def test_routes_keep_their_order_whatever_is_included_first(settings: Settings) -> None:
    at_once = _route_keys(create_app(settings, configure_logs=False))
    app = create_app(settings, configure_logs=False)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/v1/files", "/orchestrate", "/v1/messages"):  # not in route order
                assert (await client.get(path)).status_code in (401, 405)
            assert len(deferred(app)) == len(ROUTER_PREFIXES) - 3
    assert _route_keys(app) == at_once


def test_the_prefixes_claim_exactly_their_routers_routes(settings: Settings) -> None:
    """Each deferred router's routes lie under its own prefixes and under no other's, and
    no prefix claims an eager route: including one router first changes no match."""
    import importlib

    assert set(ROUTER_PREFIXES) <= set(CAPABILITIES) - EAGER_ROUTERS
    eager = [
        r.path  # type: ignore[attr-defined]
        for name in EAGER_ROUTERS
        for r in importlib.import_module(name).router.routes
    ]
    for name, prefixes in ROUTER_PREFIXES.items():
        paths = [r.path for r in importlib.import_module(name).router.routes]
        assert paths and all(claims(prefixes, p) for p in paths), (name, paths)
        others = [q for n, qs in ROUTER_PREFIXES.items() if n != name for q in qs]
        assert not any(claims(others, p) for p in paths), (name, paths)
        assert not any(claims(prefixes, p) for p in eager), (name, prefixes)
    deferred_with_routes = {
        name
        for name in CAPABILITIES
        if name not in EAGER_ROUTERS
        and getattr(importlib.import_module(name), "router", None) is not None
    }
    assert deferred_with_routes == set(ROUTER_PREFIXES)


def test_claims_is_by_path_segment() -> None:
    assert claims(("/v1/messages",), "/v1/messages")
    assert claims(("/v1/messages",), "/v1/messages/count_tokens")
    assert not claims(("/v1/messages",), "/v1/messagesX")
    assert not claims((), "/v1/messages")


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
