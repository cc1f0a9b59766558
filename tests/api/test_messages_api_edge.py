"""/v1/messages at the edges: x-api-key auth, Anthropic-shaped errors from every layer
(the auth gate, the JSON guard, the body limits, validation, the route, mid-stream), and
the gateway's cache, fallbacks and rate limits observed on the route (headers, metrics)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
import redis.asyncio as aioredis

from aiservice import create_app
from aiservice.api import anthropic_messages
from aiservice.observability.metrics import REGISTRY
from aiservice.platforms.serve import ShutdownGuard
from tests.conftest import app_client
from tests.providers.contract import Failure
from tests.providers.fixtures.upstream import sse_data
from tests.support.llm_servers import CLIENT_KEY, Upstreams, upstream_servers, upstreams
from tests.support.messages_upstreams import (
    GatewayFactory,
    MessagesUpstreams,
    gateway_for,
    messages_servers,
    messages_settings,
    messages_upstreams,
)
from tests.support.servers import serve_app

__all__ = [
    "gateway_for",
    "messages_servers",
    "messages_settings",
    "messages_upstreams",
    "upstream_servers",
    "upstreams",
]

HELLO = [{"role": "user", "content": "hello there"}]
BODY = {"model": "openai", "max_tokens": 32, "messages": HELLO}
SHARED_REDIS = "redis://127.0.0.1:6379/0"
KEY = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}


def metric(name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    """Asserts Anthropic's error body and returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == kind and set(body["error"]) == {"type", "message"}
    message: str = body["error"]["message"]
    return message


# -- authentication -------------------------------------------------------------------


async def test_x_api_key_or_bearer_is_the_key_and_a_bad_one_is_an_anthropic_401(
    messages_settings: Any, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(messages_settings()) as gw:
        by_header = await gw.sdk.messages.create(model="fake", max_tokens=8, messages=HELLO)
        bearer = anthropic.AsyncAnthropic(base_url=gw.url, auth_token=CLIENT_KEY, max_retries=0)
        async with bearer:
            by_bearer = await bearer.messages.create(model="fake", max_tokens=8, messages=HELLO)
        wrong = anthropic.AsyncAnthropic(
            base_url=gw.url, api_key="not-a-key-0000000", max_retries=0
        )
        async with wrong:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await wrong.messages.create(model="fake", max_tokens=8, messages=HELLO)
        missing = await gw.http.post("/v1/messages", json=BODY)
        counted = await gw.http.post(
            "/v1/messages/count_tokens", json={"model": "fake", "messages": HELLO}
        )
        chat = await gw.http.post("/v1/chat/completions", json={"model": "fake", "messages": HELLO})
    assert by_header.content[0].text == by_bearer.content[0].text == "hello there"  # type: ignore[union-attr]
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key"},
    }
    anthropic_error(missing, 401, "authentication_error")
    assert missing.headers["connection"] == "close"  # the body was never read
    anthropic_error(counted, 401, "authentication_error")
    # Other routes keep the OpenAI envelope.
    assert chat.status_code == 401 and chat.json()["error"]["type"] == "authentication_error"


# -- errors from each layer ------------------------------------------------------------


async def test_errors_before_the_route_are_anthropic_shaped(
    messages_settings: Any, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(messages_settings(limits={"max_body_bytes": 4096})) as gw:
        bad_json = await gw.http.post(
            "/v1/messages",
            content=b'{"model": ',
            headers={**KEY, "content-type": "application/json"},
        )
        surrogate = await gw.http.post(
            "/v1/messages",
            content=b'{"model": "fake", "max_tokens": 5, "messages": ["\\ud800"]}',
            headers={**KEY, "content-type": "application/json"},
        )
        text = await gw.http.post(
            "/v1/messages", content=b"hi", headers={**KEY, "content-type": "text/plain"}
        )
        declared = await gw.http.post(
            "/v1/messages", content=b"x" * 5000, headers={**KEY, "content-type": "application/json"}
        )

        missing = await gw.http.post(
            "/v1/messages", json={"model": "fake", "messages": HELLO}, headers=KEY
        )
        unknown_path = await gw.http.post("/v1/messages/batches", json={}, headers=KEY)
        wrong_method = await gw.http.get("/v1/messages", headers=KEY)
    assert "not valid JSON" in anthropic_error(bad_json, 400, "invalid_request_error")
    assert "surrogate" in anthropic_error(surrogate, 400, "invalid_request_error")
    anthropic_error(text, 415, "invalid_request_error")
    assert "4096 bytes" in anthropic_error(declared, 413, "request_too_large")
    assert "max_tokens" in anthropic_error(missing, 422, "invalid_request_error")
    anthropic_error(unknown_path, 404, "not_found_error")
    anthropic_error(wrong_method, 405, "invalid_request_error")


async def test_a_chunked_body_over_the_limit_is_an_anthropic_413(messages_settings: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    # In-process: a real server closes the connection while the client is still sending.
    async with app_client(messages_settings(limits={"max_body_bytes": 4096})) as client:
        chunked = await client.post(
            "/v1/messages", content=chunks(), headers={**KEY, "content-type": "application/json"}
        )
    assert "4096 bytes" in anthropic_error(chunked, 413, "request_too_large")


async def test_a_stalled_body_is_an_anthropic_408(messages_settings: Any) -> None:
    app = create_app(messages_settings(limits={"body_timeout_seconds": 0.2}), configure_logs=False)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent and not getattr(receive, "started", False):
            receive.started = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b'{"model":', "more_body": True}
        await asyncio.sleep(5)  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/messages",
        "raw_path": b"/v1/messages",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", b"100"),
            (b"x-api-key", CLIENT_KEY.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 408
    response = httpx.Response(408, content=b"".join(m.get("body", b"") for m in sent[1:]))
    assert "0.2 seconds" in anthropic_error(response, 408, "invalid_request_error")


async def test_route_errors_and_a_failure_mid_stream(
    messages_settings: Any, gateway_for: GatewayFactory, upstreams: Upstreams
) -> None:
    async with gateway_for(messages_settings()) as gw:
        with pytest.raises(anthropic.NotFoundError) as unknown:
            await gw.sdk.messages.create(model="nope", max_tokens=8, messages=HELLO)
        upstreams.primary.inject(Failure(status=500))
        failed = await gw.http.post("/v1/messages", json=BODY, headers=KEY)
        upstreams.primary.inject(Failure(kind="drop"))
        cut = await gw.http.post("/v1/messages", json={**BODY, "stream": True}, headers=KEY)
        with pytest.raises(anthropic.APIStatusError) as in_sdk:
            async with gw.sdk.messages.stream(model="openai", max_tokens=32, messages=HELLO) as s:
                [text async for text in s.text_stream]
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "nope" in unknown.value.body["error"]["message"]  # type: ignore[index]
    assert "primary returned HTTP 500" in anthropic_error(failed, 502, "api_error")
    # The status line (200) is gone: the failure is Anthropic's error event, then the end.
    assert cut.status_code == 200
    events = sse_data(cut.text)
    assert [e["type"] for e in events[:2]] == ["message_start", "ping"]
    assert any(e["type"] == "content_block_delta" for e in events)
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error"
    assert "message_stop" not in [e["type"] for e in events]
    assert cut.text.rstrip().split("\n\n")[-1].startswith("event: error\n")
    assert in_sdk.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_an_unhandled_error_is_an_anthropic_500_from_the_boundary(
    messages_settings: Any, gateway_for: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What no handler answers reaches the outermost middleware: its 500 takes the shape
    of the API called, on both routes, and the SDK reads it."""

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(anthropic_messages, "to_chat_request", broken)
    async with gateway_for(messages_settings()) as gw:
        with pytest.raises(anthropic.InternalServerError) as created:
            await gw.sdk.messages.create(model="fake", max_tokens=8, messages=HELLO)
        with pytest.raises(anthropic.InternalServerError) as counted:
            await gw.sdk.messages.count_tokens(model="fake", messages=HELLO)
        raw = await gw.http.post("/v1/messages", json=BODY, headers=KEY)
    expected = {"type": "error", "error": {"type": "api_error", "message": "internal server error"}}
    for caught in (created, counted):
        assert caught.value.status_code == 500
        assert caught.value.body == expected
    assert anthropic_error(raw, 500, "api_error") == "internal server error"
    assert "secret internals" not in raw.text and len(raw.headers["x-request-id"]) == 32


async def test_a_request_outliving_the_shutdown_grace_gets_an_anthropic_503(
    messages_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container bridge's 503 (:class:`ShutdownGuard`) on /v1/messages, under uvicorn."""
    waiting = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def stalled(*_: Any, **__: Any) -> Any:
        loops.append(asyncio.get_running_loop())
        waiting.set()
        await asyncio.sleep(30)

    monkeypatch.setattr(anthropic_messages, "cached_stream", stalled)
    guard = ShutdownGuard(create_app(messages_settings(), configure_logs=False))
    with serve_app(guard) as url:
        sdk = anthropic.AsyncAnthropic(base_url=url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
        async with sdk:
            call = asyncio.create_task(
                sdk.messages.create(model="fake", max_tokens=8, messages=HELLO)
            )
            assert await asyncio.to_thread(waiting.wait, 10)
            loops[0].call_soon_threadsafe(guard.expire)  # the grace is over
            with pytest.raises(anthropic.InternalServerError) as caught:
                await call
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "message": "The server is shutting down; retry the request.",
        },
    }


# -- the gateway's treatment, on this route ---------------------------------------------


def _cached(messages_settings: Any, **sections: Any) -> Any:
    namespace = f"messages-test-{uuid.uuid4().hex[:10]}"
    return messages_settings(cache={"mode": "on", "namespace": namespace}, **sections)


@pytest.mark.parametrize(("model", "upstream"), [("openai", "primary"), ("claude", "anthropic")])
async def test_cache_hits_and_coalescing(
    model: str,
    upstream: str,
    messages_settings: Any,
    gateway_for: GatewayFactory,
    upstreams: Upstreams,
    messages_upstreams: MessagesUpstreams,
) -> None:
    def calls() -> int:
        if upstream == "primary":
            return upstreams.primary.calls["/v1/chat/completions"]
        return len(messages_upstreams.anthropic.received)

    hits = metric("aiservice_cache_requests_total", result="hit")
    body = {**BODY, "model": model}
    async with gateway_for(_cached(messages_settings)) as gw:
        first = await gw.http.post("/v1/messages", json=body, headers=KEY)
        second = await gw.http.post("/v1/messages", json=body, headers=KEY)
        streamed = await gw.http.post("/v1/messages", json={**body, "stream": True}, headers=KEY)
        async with gw.sdk.messages.stream(model=model, max_tokens=32, messages=HELLO) as stream:
            final = await stream.get_final_message()
        other = await gw.http.post("/v1/messages", json={**body, "max_tokens": 33}, headers=KEY)
        concurrent = await asyncio.gather(
            *(
                gw.http.post("/v1/messages", json={**body, "max_tokens": 34}, headers=KEY)
                for _ in range(5)
            )
        )
    statuses = [r.headers["x-aiservice-cache"] for r in (first, second, streamed, other)]
    assert statuses == ["miss", "hit", "hit", "miss"]
    assert sorted(r.headers["x-aiservice-cache"] for r in concurrent).count("miss") == 1
    assert calls() == 3  # first, other, and one for the five concurrent requests
    assert metric("aiservice_cache_requests_total", result="hit") - hits >= 3
    assert first.json()["content"] == second.json()["content"]
    assert final.content[0].text == first.json()["content"][0]["text"]  # type: ignore[union-attr]
    events = sse_data(streamed.text)
    assert events[-1]["type"] == "message_stop"
    if model == "claude":  # the native events were stored and replayed as they came
        assert events[0]["message"]["id"] == "msg_echo"
        assert second.json()["id"] == "msg_echo"
    assert second.headers["x-aiservice-provider"] == ("primary" if model == "openai" else "claude")


async def test_native_events_survive_a_shared_redis_cache(
    messages_settings: Any, gateway_for: GatewayFactory, messages_upstreams: MessagesUpstreams
) -> None:
    namespace = f"messages-test-{uuid.uuid4().hex[:10]}"
    cache = {"mode": "on", "backend": "redis", "url": SHARED_REDIS, "namespace": namespace}
    settings = messages_settings(cache=cache)
    body = {**BODY, "model": "claude", "stream": True}
    try:
        async with gateway_for(settings) as first, gateway_for(settings) as second:
            miss = await first.http.post("/v1/messages", json=body, headers=KEY)
            hit = await second.http.post("/v1/messages", json=body, headers=KEY)
            async with second.sdk.messages.stream(
                model="claude", max_tokens=32, messages=HELLO
            ) as stream:
                final = await stream.get_final_message()
    finally:
        client = aioredis.Redis.from_url(SHARED_REDIS)
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    assert (miss.headers["x-aiservice-cache"], hit.headers["x-aiservice-cache"]) == ("miss", "hit")
    assert len(messages_upstreams.anthropic.received) == 1
    assert sse_data(hit.text) == sse_data(miss.text)  # the upstream's own events, replayed
    assert final.id == "msg_echo" and final.content[0].text == "echo: hello there "  # type: ignore[union-attr]


async def test_a_failing_deployment_falls_back_and_usage_is_accounted(
    messages_settings: Any, gateway_for: GatewayFactory, upstreams: Upstreams
) -> None:
    fallbacks = metric("aiservice_llm_fallbacks_total", model="chat")
    failures = metric("aiservice_llm_requests_total", provider="primary", status="500")
    tokens = metric("aiservice_llm_tokens_total", provider="backup")
    upstreams.primary.inject(Failure(status=500))
    async with gateway_for(messages_settings()) as gw:
        raw = await gw.sdk.messages.with_raw_response.create(
            model="chat", max_tokens=32, messages=HELLO
        )
        message = await raw.parse()
        async with gw.sdk.messages.stream(model="chat", max_tokens=32, messages=HELLO) as stream:
            final = await stream.get_final_message()
    assert message.content[0].text == "backup: hello there"  # type: ignore[union-attr]
    assert final.content[0].text == "backup: hello there"  # type: ignore[union-attr]
    assert message.model == "chat"
    assert raw.headers["x-aiservice-provider"] == "backup"
    assert raw.headers["x-aiservice-model"] == "gpt-backup"
    assert metric("aiservice_llm_fallbacks_total", model="chat") - fallbacks == 2
    assert metric("aiservice_llm_requests_total", provider="primary", status="500") - failures >= 2
    assert metric("aiservice_llm_tokens_total", provider="backup") - tokens > 0


async def test_rate_limits_apply_with_headers_and_an_anthropic_429(
    messages_settings: Any, gateway_for: GatewayFactory
) -> None:
    rejected = metric("aiservice_ratelimit_rejections_total")
    settings = messages_settings(limits={"requests_per_minute": 2})
    async with gateway_for(settings) as gw:
        ok = await gw.sdk.messages.with_raw_response.create(
            model="fake", max_tokens=8, messages=HELLO
        )
        counted = await gw.http.post(
            "/v1/messages/count_tokens", json={"model": "fake", "messages": HELLO}, headers=KEY
        )
        with pytest.raises(anthropic.RateLimitError) as caught:
            await gw.sdk.messages.create(model="fake", max_tokens=8, messages=HELLO)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert counted.headers["x-ratelimit-remaining-requests"] == "0"
    limited = caught.value.response
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert metric("aiservice_ratelimit_rejections_total") - rejected == 1


async def test_request_limits_apply_before_the_cache(messages_settings: Any) -> None:
    settings = _cached(messages_settings, limits={"requests": {"max_tokens": 16}})
    async with app_client(settings) as client:
        over = await client.post("/v1/messages", json=BODY, headers=KEY)
    assert "max_tokens" in anthropic_error(over, 400, "invalid_request_error")


# -- the document --------------------------------------------------------------------------


async def test_openapi_documents_the_anthropic_error_body(messages_settings: Any) -> None:
    async with app_client(messages_settings()) as client:
        document = (await client.get("/openapi.json")).json()
    post = document["paths"]["/v1/messages"]["post"]
    ref = "#/components/schemas/AnthropicErrorResponse"
    for status in ("400", "401", "404", "408", "413", "415", "422", "429", "500", "502", "503"):
        assert post["responses"][status]["content"]["application/json"]["schema"] == {"$ref": ref}
    assert set(post["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/MessagesRequest"
    )
    count = document["paths"]["/v1/messages/count_tokens"]["post"]["responses"]
    assert count["401"]["content"]["application/json"]["schema"] == {"$ref": ref}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert chat["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    schema = document["components"]["schemas"]["AnthropicErrorResponse"]
    assert schema["required"] == ["type", "error"]
    assert {"apiKeyHeader": []} in post["security"]
