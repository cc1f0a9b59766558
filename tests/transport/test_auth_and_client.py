"""The one auth-header protocol (provider keys, step auth, webhook signatures) and the
guarded client's requests and answers, against a real loopback server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from yarl import URL

from aiservice.orchestrator.auth import StepAuthenticator
from aiservice.orchestrator.webhook import WebhookSigner, verify
from aiservice.providers.http import KeyHeaders
from aiservice.secrets.base import SecretResolver
from aiservice.security.ssrf import SSRFGuard
from aiservice.transport.auth import NO_AUTH, HeaderAuth, Outgoing, with_auth
from aiservice.transport.client import (
    GuardedClient,
    InvalidURLError,
    TransportError,
    build_request,
)

from ..conftest import MakeSettings
from ..support.servers import free_port, serve_app

ENV = {"STEP_TOKEN": "step-token-123", "PROVIDER_KEY": "sk-provider-456"}


def post(body: bytes = b'{"a":1}') -> Outgoing:
    return build_request(
        "POST", "http://fn.example/x?q=1", headers={"Content-Type": "application/json"}, body=body
    )


async def test_every_credential_source_is_a_header_auth(make_settings: MakeSettings) -> None:
    settings = make_settings({}, ENV)
    secrets = SecretResolver(settings)
    sources: dict[str, HeaderAuth] = {
        "provider key": KeyHeaders(secrets, "secret://env/PROVIDER_KEY"),
        "step bearer": StepAuthenticator(settings, secrets).bind(
            "bearer", {"token": "secret://env/STEP_TOKEN"}
        ),
        "webhook": WebhookSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1"),
        "none": NO_AUTH,
    }
    request = post()
    got = {name: dict(await source.headers(request)) for name, source in sources.items()}
    assert got["provider key"] == {"Authorization": "Bearer sk-provider-456"}
    assert got["step bearer"] == {"Authorization": "Bearer step-token-123"}
    assert got["none"] == {}
    signed = {**request.headers, **got["webhook"]}
    assert verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", signed, request.body or b"")
    # The provider form without a request at hand gives the same headers.
    assert await KeyHeaders(secrets, "secret://env/PROVIDER_KEY")() == got["provider key"]


async def test_auth_headers_replace_same_named_ones_whatever_their_case() -> None:
    class Fixed:
        async def headers(self, request: Outgoing) -> dict[str, str]:
            return {"authorization": "Bearer new"}

    request = build_request("GET", "http://fn.example/", headers={"Authorization": "Bearer old"})
    signed = await with_auth(request, Fixed())
    assert dict(signed.headers) == {"authorization": "Bearer new"}
    assert request.headers == {"Authorization": "Bearer old"}  # the original is untouched
    assert await with_auth(request, NO_AUTH) is request


def test_query_values_are_spelled_as_flows_expect() -> None:
    request = build_request(
        "get",
        "http://fn.example/p?keep=1",
        query={"b": True, "f": False, "n": None, "i": 3, "l": ["x", "y"], "s": "a b&c"},
    )
    assert request.method == "GET"
    assert str(request.url) == (
        "http://fn.example/p?keep=1&b=true&f=false&n=&i=3&l=x&l=y&s=a+b%26c"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://fn.example/a\x00b",
        "http://fn.example/\r\nX-Injected: 1",
        "ftp://fn.example/",
        "fn.example/x",
        "http://[::1/",
        "http:///nohost",
    ],
)
def test_urls_no_request_can_carry_are_refused(url: str) -> None:
    with pytest.raises(InvalidURLError):
        build_request("GET", url)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int, list[dict[str, Any]]]]:
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.api_route("/echo", methods=["GET", "POST"])
    async def echo(request: Request) -> Any:
        seen.append({"headers": dict(request.headers), "body": await request.body()})
        return {"query": str(request.url.query)}

    @app.get("/hold")
    async def hold() -> Any:
        await asyncio.sleep(5)
        return {}

    @app.get("/moved")
    async def moved() -> Response:
        return Response(status_code=301, headers={"location": "http://127.0.0.1:1/"})

    with serve_app(app) as url:
        port = URL(url).port
        assert port is not None
        yield url, port, seen


async def test_the_guarded_client_sends_signed_requests_and_reads_answers(
    server: tuple[str, int, list[dict[str, Any]]],
) -> None:
    url, port, seen = server
    client = GuardedClient(SSRFGuard([f"127.0.0.1:{port}"]))
    try:
        body = json.dumps({"a": 1}).encode()
        request = build_request(
            "POST", f"{url}/echo", query={"q": "v"}, headers={"x-trace": "t"}, body=body
        )
        answer = await client.send(request, WebhookSigner("plain-secret", "msg_9"))
        assert answer.ok and answer.json() == {"query": "q=v"}
        received = seen[-1]
        assert received["body"] == body and received["headers"]["x-trace"] == "t"
        assert verify("plain-secret", received["headers"], body)
        assert "cookie" not in received["headers"]
        moved = await client.send(build_request("GET", f"{url}/moved"))
        assert moved.status == 301 and moved.is_redirect and not moved.ok  # not followed
    finally:
        await client.aclose()


async def test_transport_failures_leave_as_one_error_with_its_kind(
    server: tuple[str, int, list[dict[str, Any]]],
) -> None:
    url, port, _ = server
    closed = free_port()
    client = GuardedClient(SSRFGuard([f"127.0.0.1:{port}", f"127.0.0.1:{closed}"]))
    try:
        with pytest.raises(TransportError) as refused:
            await client.send(build_request("GET", f"http://127.0.0.1:{closed}/"))
        assert refused.value.failure == "connect"
        assert refused.value.message.startswith("ClientConnectorError")
        # The caller bounds the time; cancelling closes the connection.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.send(build_request("GET", f"{url}/hold"))
    finally:
        await client.aclose()


async def test_not_http_at_all_is_a_connect_failure() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = GuardedClient(SSRFGuard([f"127.0.0.1:{port}"]))
    try:
        with pytest.raises(TransportError) as info:
            await client.send(build_request("GET", f"http://127.0.0.1:{port}/"))
        assert info.value.failure == "connect"
    finally:
        await client.aclose()
        listener.close()
        await listener.wait_closed()
