"""Every loopback spelling, through every way a URL reaches an HTTP client, connects nowhere.

A real TCP listener on 127.0.0.1 (and on ::1, same port, when the host has IPv6) counts the
connections it accepts. Each spelling of its address is driven through the real app:

(a) a webhook ``callback_url`` from the request;
(b) a step URL built from request input;
(c) a step URL laundered through a previous step's output: step ``s1`` is a real ML
    function (literal, allowed) answering ``{"next": <spelling>}`` and step ``s2`` calls
    ``${steps.s1.output.next}``;
(d) a redirect: a literal, allowed function answers ``302 Location: <spelling>``;
(e) an async execution whose completion webhook URL comes from a step output.

The listener must see zero connections, and every request gets a 4xx or a failed-step
result, never a 500. A positive control shows that the listener does count connections a
guard lets through, so the zero is not vacuous.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from ..conftest import MakeSettings
from ..orchestrator.conftest import orchestrator_app
from ..security.spellings import LOOPBACK_SPELLINGS, spell
from ..support.servers import serve_app


@dataclass
class Listener:
    """Counts accepted TCP connections; answers HTTP 200 so a wrong pass would complete."""

    port: int = 0
    connections: int = 0
    servers: list[asyncio.Server] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            body = b'{"reached": true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    counter = Listener()
    for _ in range(20):  # find a port free on both 127.0.0.1 and ::1
        v4 = await asyncio.start_server(counter.handle, "127.0.0.1", 0)
        port = v4.sockets[0].getsockname()[1]
        if not _has_ipv6_loopback():
            counter.servers = [v4]
            break
        try:
            v6 = await asyncio.start_server(counter.handle, "::1", port)
        except OSError:
            v4.close()
            await v4.wait_closed()
            continue
        counter.servers = [v4, v6]
        break
    assert counter.servers, "no port free on both loopback addresses"
    counter.port = port
    try:
        yield counter
    finally:
        for server in counter.servers:
            server.close()
            await server.wait_closed()


@dataclass
class Function:
    """The allowed ML function: echoes ``next`` back, or redirects to ``to``."""

    url: str
    calls: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def function() -> Iterator[Function]:
    app = FastAPI()
    calls: list[str] = []

    @app.post("/next")
    async def next_(request: Request) -> Any:
        body = await request.json()
        calls.append("next")
        return {"next": body["next"]}

    @app.post("/redirect")
    async def redirect(to: str) -> Any:
        calls.append("redirect")
        return RedirectResponse(to, status_code=302)

    @app.post("/ok")
    async def ok() -> Any:
        calls.append("ok")
        return JSONResponse({"ok": True})

    with serve_app(app) as url:
        yield Function(url, calls)


def _flows(fn: str) -> dict[str, Any]:
    return {
        "a_webhook": {
            "steps": {"s": {"url": f"{fn}/ok"}},
            "webhook": {"url": "${input.callback_url}"},
        },
        "b_input": {"steps": {"s": {"url": "${input.target}"}}},
        "c_laundered": {
            "steps": {
                "s1": {"url": f"{fn}/next", "body": {"next": "${input.target}"}},
                "s2": {"url": "${steps.s1.output.next}", "depends_on": ["s1"]},
            }
        },
        "d_redirect": {
            "steps": {"s": {"url": f"{fn}/redirect", "query": {"to": "${input.target}"}}}
        },
        "e_async_webhook": {
            "steps": {"s1": {"url": f"{fn}/next", "body": {"next": "${input.target}"}}},
            "webhook": {"url": "${steps.s1.output.next}"},
        },
    }


Check = Callable[[httpx.AsyncClient, str], Awaitable[str | None]]
"""Drives one spelled URL through one path; returns a problem, or ``None`` if refused well."""


def _step_failed(response: httpx.Response, step: str) -> str | None:
    if response.status_code >= 500 and response.status_code != 502:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    doc = response.json()
    if response.status_code != 502 or doc["error"]["code"] != "step_failed":
        return f"expected a failed step (502 step_failed), got {response.status_code}: {doc}"
    if doc["steps"][step]["status"] != "failed":
        return f"step {step} is {doc['steps'][step]['status']}"
    return None


async def _webhook(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.post("/orchestrate/a_webhook", json={"callback_url": url})
    if response.status_code != 400 or response.json()["error"]["code"] != "url_not_allowed":
        return f"expected 400 url_not_allowed, got {response.status_code}: {response.text[:200]}"
    return None


async def _input(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.post("/orchestrate/b_input", json={"target": url})
    problem = _step_failed(response, "s")
    if problem is None and "SSRFError" not in response.json()["steps"]["s"]["error"]:
        problem = f"failed for another reason: {response.json()['steps']['s']['error']}"
    return problem


async def _laundered(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.post("/orchestrate/c_laundered", json={"target": url})
    problem = _step_failed(response, "s2")
    steps = response.json()["steps"]
    if problem is None and steps["s1"]["output"] != {"next": url}:
        problem = f"s1 did not hand the URL on: {steps['s1']}"
    if problem is None and "SSRFError" not in steps["s2"]["error"]:
        problem = f"s2 failed for another reason: {steps['s2']['error']}"
    return problem


async def _redirect(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.post("/orchestrate/d_redirect", json={"target": url})
    problem = _step_failed(response, "s")
    state = response.json()["steps"]["s"]
    # httpx parses Location even when not following it: a Location no URL parser accepts
    # (0177.0.0.1) fails the step as a protocol error instead of a 302.
    unparsable = "Invalid URL in location header" in (state["error"] or "")
    if problem is None and state["http_status"] != 302 and not unparsable:
        problem = f"the function did not redirect: {state}"
    return problem


async def _async_webhook(client: httpx.AsyncClient, url: str) -> str | None:
    response = await client.post(
        "/orchestrate/e_async_webhook", params={"mode": "async"}, json={"target": url}
    )
    if response.status_code != 202:
        return f"expected 202, got {response.status_code}: {response.text[:200]}"
    location = response.headers["location"]
    for _ in range(200):
        doc = (await client.get(location)).json()
        if doc["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.01)
    else:
        return f"execution did not finish: {doc}"
    if doc["status"] != "succeeded" or doc["webhook"] is None:
        return f"expected a run with a failed webhook, got {doc}"
    if doc["webhook"]["status"] != "failed" or doc["webhook"]["attempts"] != 0:
        return f"the webhook was attempted: {doc['webhook']}"
    return None


PATHS: dict[str, Check] = {
    "a_webhook_callback_url": _webhook,
    "b_step_url_from_input": _input,
    "c_step_url_from_step_output": _laundered,
    "d_redirect_from_allowed_function": _redirect,
    "e_async_webhook_from_step_output": _async_webhook,
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_no_spelling_of_loopback_connects(
    path: str, listener: Listener, function: Function, make_settings: MakeSettings
) -> None:
    fn_port = httpx.URL(function.url).port
    settings = make_settings(
        {
            "flows": _flows(function.url),
            # The function's own port is allowlisted: the listener's port on the same
            # host must stay closed.
            "orchestrator": {
                "default_step_timeout": 5.0,
                "ssrf_allowlist": [f"127.0.0.1:{fn_port}", f"[::1]:{fn_port}"],
                "webhook": {"max_attempts": 1, "timeout": 2.0},
            },
        }
    )
    check = PATHS[path]
    problems: dict[str, str] = {}
    function.calls.clear()
    async with orchestrator_app(settings) as (client, _):
        for template in LOOPBACK_SPELLINGS:
            url = spell(template, listener.port)
            before = listener.connections
            problem = await check(client, url)
            if listener.connections != before:
                problem = f"{listener.connections - before} connection(s) reached the listener"
            if problem:
                problems[url] = problem
    assert problems == {}
    assert listener.connections == 0
    if path.startswith(("c_", "d_", "e_")):  # the allowed function really was called
        assert len(function.calls) >= len(LOOPBACK_SPELLINGS)


async def test_the_listener_counts_what_a_guard_lets_through(
    listener: Listener, function: Function, make_settings: MakeSettings
) -> None:
    """Positive control: allowlisting the listener's port lets spelled URLs reach it."""
    settings = make_settings(
        {
            "flows": _flows(function.url),
            "orchestrator": {"ssrf_allowlist": [f"127.0.0.1:{listener.port}"]},
        }
    )
    async with orchestrator_app(settings) as (client, _):
        for spelled in ("http://127.0.0.1:PORT/", "http://0x7f000001:PORT/", "http://127.1:PORT/"):
            response = await client.post(
                "/orchestrate/c_laundered", json={"target": spell(spelled, listener.port)}
            )
            assert response.status_code == 200, response.text
            assert response.json()["steps"]["s2"]["output"] == {"reached": True}
    assert listener.connections == 3
