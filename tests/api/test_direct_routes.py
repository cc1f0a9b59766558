"""The hot routes served without FastAPI's per-request machinery answer exactly as FastAPI
would: the same validation errors, the same protection, the same metrics label."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.routing import Match

from aiservice import Settings, create_app
from aiservice.api.deps import ExactRoutes, protection_table
from aiservice.api.errors import install_error_handlers
from aiservice.api.openai_schemas import ChatCompletionRequest, EmbeddingsRequest
from aiservice.api.ratelimit import enforce_rate_limits
from aiservice.api.routing import direct_routes, route_path
from aiservice.cache.ratelimit import Admission
from aiservice.observability.metrics import REGISTRY
from aiservice.security.auth_gate import Protection
from tests.conftest import app_client

KEY = "direct-routes-client-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

BAD_BODIES: list[Any] = [
    None,  # no body at all: FastAPI's "Field required" on ``body``
    {"model": "fake"},
    {"model": "fake", "messages": "hi"},
    {"model": 3, "messages": [{"role": "nobody", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}], "temperature": "hot"},
    {"model": "fake", "input": {"a": 1}},
]


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings({"auth": {"api_keys": [KEY]}})
    return settings


def plain_fastapi() -> FastAPI:
    """The same bodies declared the ordinary FastAPI way, with the app's error handlers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/chat")
    async def chat(body: ChatCompletionRequest) -> dict[str, str]:
        return {}

    @app.post("/embeddings")
    async def embeddings(body: EmbeddingsRequest) -> dict[str, str]:
        return {}

    return app


def test_the_hot_routes_are_served_directly(settings: Settings) -> None:
    app = create_app(settings, configure_logs=False)
    table = direct_routes(app.routes)
    assert set(table) == {
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/health/live"),  # the probe: a cold start's first request, often
    }
    route, _ = table[("POST", "/v1/chat/completions")]
    assert route.path == "/v1/chat/completions"


@pytest.mark.parametrize("body", BAD_BODIES)
@pytest.mark.parametrize(
    ("path", "plain"), [("/v1/chat/completions", "/chat"), ("/v1/embeddings", "/embeddings")]
)
async def test_validation_errors_match_fastapi(
    settings: Settings, body: Any, path: str, plain: str
) -> None:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    reference = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=plain_fastapi()), base_url="http://ref"
    )
    async with reference, app_client(settings) as client:
        expected = await reference.post(plain, **kwargs)
        got = await client.post(path, headers=AUTH, **kwargs)
    assert expected.status_code == 422
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


async def test_key_checked_before_the_body(settings: Settings) -> None:
    async with app_client(settings) as client:
        missing = await client.post("/v1/chat/completions", json={"model": "fake"})
        wrong = await client.post(
            "/v1/chat/completions", json={}, headers={"Authorization": "Bearer nope-nope-nope"}
        )
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"


async def test_errors_from_the_handler_use_the_envelope(settings: Settings) -> None:
    body = {"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}
    async with app_client(settings) as client:
        unknown = await client.post("/v1/chat/completions", json=body, headers=AUTH)
        text = await client.post(
            "/v1/chat/completions", content=b"{}", headers={**AUTH, "content-type": "text/plain"}
        )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert text.status_code == 415


async def test_metrics_label_the_route_template(settings: Settings) -> None:
    def served() -> float:
        labels = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
        value = REGISTRY.get_sample_value("aiservice_http_requests_total", labels)
        return value or 0.0

    before = served()
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    async with app_client(settings) as client:
        response = await client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "hi"
    assert served() == before + 1


async def test_served_when_mounted_under_a_prefix(settings: Settings) -> None:
    inner = create_app(settings, configure_logs=False)
    outer = FastAPI()
    outer.mount("/ai", inner)
    body = {"model": "fake", "messages": [{"role": "user", "content": "mounted"}]}
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        response = await client.post("/ai/v1/chat/completions", json=body, headers=AUTH)
        unauthenticated = await client.post("/ai/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "mounted"
    assert unauthenticated.status_code == 401


def test_route_path_strips_the_root_path() -> None:
    assert route_path({"path": "/ai/v1/models", "root_path": "/ai"}) == "/v1/models"
    assert route_path({"path": "/aiv1", "root_path": "/ai"}) == "/aiv1"
    assert route_path({"path": "/ai", "root_path": "/ai"}) == ""
    assert route_path({"path": "/v1/models"}) == "/v1/models"


def test_the_gate_finds_static_routes_in_one_lookup(settings: Settings) -> None:
    app = create_app(settings, configure_logs=False)
    table = protection_table(app.routes, settings)
    exact = [(m, level) for m, level in table if isinstance(m, ExactRoutes)]
    by_key = {key: level for m, level in exact for key in m.levels}
    assert by_key[("POST", "/v1/chat/completions")] is Protection.CALLER
    assert by_key[("GET", "/v1/models")] is Protection.CALLER
    assert by_key[("GET", "/health/live")] is Protection.PUBLIC
    # Every static pair gets the level the full table gives it.
    for (method, path), level in by_key.items():
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        rest = [
            lv
            for m, lv in table
            if not isinstance(m, ExactRoutes) and m.matches(scope)[0] is Match.FULL
        ]
        assert rest[0] is level


async def test_dependency_overrides_take_effect_on_the_direct_routes(settings: Settings) -> None:
    """A library user's ``app.dependency_overrides`` reach the hot routes too: while any is
    set they are served the FastAPI way; once cleared, directly again."""
    seen: list[str] = []

    async def admitted(request: Request) -> Admission:
        seen.append(request.url.path)
        return Admission({"x-ratelimit-limit-requests": "7"})

    app = create_app(settings, configure_logs=False)
    chat = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    embed = {"model": "fake", "input": "hi"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            app.dependency_overrides[enforce_rate_limits] = admitted
            overridden = [
                await client.post("/v1/chat/completions", json=chat, headers=AUTH),
                await client.post("/v1/embeddings", json=embed, headers=AUTH),
            ]
            invalid = await client.post("/v1/chat/completions", json={}, headers=AUTH)
            app.dependency_overrides.clear()
            plain = await client.post("/v1/chat/completions", json=chat, headers=AUTH)
    for response in overridden:
        assert response.status_code == 200, response.text
        assert response.headers["x-ratelimit-limit-requests"] == "7"
    assert seen == ["/v1/chat/completions", "/v1/embeddings", "/v1/chat/completions"]
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_body"
    assert plain.status_code == 200 and "x-ratelimit-limit-requests" not in plain.headers
    assert overridden[0].json()["choices"][0]["message"]["content"] == "hi"
