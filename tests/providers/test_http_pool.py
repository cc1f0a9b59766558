"""The providers' upstream client on the shared transport (one aiohttp session per process
and loop), against a real local server: pooling, lifecycle across event loops, streaming,
timeouts, error kinds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiservice.providers.base import ProviderError
from aiservice.providers.upstream import UpstreamClient
from aiservice.transport.lines import iter_lines
from aiservice.transport.session import SessionPool
from tests.support.servers import free_port, serve_app


class Server:
    """``/port`` answers with the client's port; ``/hold`` waits for ``release``;
    ``/cookie`` sets a cookie and echoes the Cookie header it got; ``/stream`` sends one
    line, waits for ``release``, then sends another."""

    def __init__(self) -> None:
        self.release = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, headers = scope["path"], dict(scope["headers"])
        out: list[tuple[bytes, bytes]] = []
        if path == "/hold":
            await asyncio.to_thread(self.release.wait, 10)
            body = b"late"
        elif path == "/cookie":
            out.append((b"set-cookie", b"tenant=a; Path=/"))
            body = headers.get(b"cookie", b"none")
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
            await asyncio.to_thread(self.release.wait, 10)
            await send({"type": "http.response.body", "body": b"second\n"})
            return
        elif path == "/burst":  # three HTTP chunks, written one right after the other
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one\n", b"two\n", b"three\n"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.to_thread(self.release.wait, 10)  # all three are in by then
            await send({"type": "http.response.body", "body": b""})
            return
        else:
            body = str(scope["client"][1]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": body})


def client(url: str, pool: SessionPool, timeout: float = 5.0) -> UpstreamClient:
    return UpstreamClient("up", url, timeout=timeout, pool=pool)


async def text(upstream: UpstreamClient, path: str) -> str:
    return (await upstream.request("GET", path, headers={})).text


async def test_light_traffic_stays_on_one_warm_connection() -> None:
    pool = SessionPool()
    with serve_app(Server(), lifespan="off") as url:
        upstream = client(url, pool)
        ports = {await text(upstream, "/port") for _ in range(5)}
        await upstream.aclose()
    assert len(ports) == 1


async def test_providers_share_one_session_and_its_connections() -> None:
    pool = SessionPool()
    with serve_app(Server(), lifespan="off") as url:
        first, second = client(url, pool), client(url, pool)
        ports = {await text(first, "/port"), await text(second, "/port")}
        assert pool.created == 1 and len(ports) == 1
        await first.aclose()
        [session] = pool.sessions()
        assert not session.closed  # still used by the second
        await second.aclose()
        await second.aclose()  # twice is harmless
    assert session.closed and not pool.sessions() and pool.users == 0


async def test_concurrent_calls_use_parallel_connections() -> None:
    server, pool = Server(), SessionPool()
    with serve_app(server, lifespan="off") as url:
        upstream = client(url, pool)
        held = [asyncio.create_task(text(upstream, "/hold")) for _ in range(4)]
        await asyncio.sleep(0.2)
        ports = {await text(upstream, "/port")}  # not queued behind the held calls
        server.release.set()
        assert await asyncio.gather(*held) == ["late"] * 4
        ports |= {await text(upstream, "/port") for _ in range(3)}
        await upstream.aclose()
    assert 1 <= len(ports) <= 5


def test_a_new_event_loop_gets_its_own_session() -> None:
    pool = SessionPool()
    with serve_app(Server(), lifespan="off") as url:
        upstream = client(url, pool)
        # Two asyncio.run calls: two loops, as a platform that restarts its loop would.
        asyncio.run(text(upstream, "/port"))
        asyncio.run(text(upstream, "/port"))
        assert pool.created == 2 and len(pool.sessions()) == 1  # the dead loop's dropped
        asyncio.run(upstream.aclose())
    assert not pool.sessions()


def test_two_loops_in_two_threads_each_get_a_session() -> None:
    server, pool = Server(), SessionPool()
    results: list[str] = []
    with serve_app(server, lifespan="off") as url:
        upstream = client(url, pool)

        def call() -> None:
            results.append(asyncio.run(text(upstream, "/hold")))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while pool.created < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.release.set()  # both calls were in flight at once, one per loop
        for thread in threads:
            thread.join(10)
        asyncio.run(upstream.aclose())
    assert results == ["late", "late"] and pool.created == 2 and not pool.sessions()


async def test_no_cookie_is_carried_to_the_next_call() -> None:
    pool = SessionPool()
    with serve_app(Server(), lifespan="off") as url:
        upstream = client(url, pool)
        assert await text(upstream, "/cookie") == "none"
        assert await text(upstream, "/cookie") == "none"
        await upstream.aclose()


async def test_stream_lines_arrive_before_the_answer_ends() -> None:
    server, pool = Server(), SessionPool()
    with serve_app(server, lifespan="off") as url:
        upstream = client(url, pool)
        lines = upstream.lines("/stream", headers={}, body={"stream": True})
        assert await anext(lines) == ["first"]  # the server is still holding the rest
        server.release.set()
        assert [batch async for batch in lines] == [["second"]]
        await upstream.aclose()


async def test_a_bursts_first_chunk_comes_alone() -> None:
    """The rest of an answer that arrived at once is not read before its first chunk
    (a token stream's first event) goes on."""
    server, pool = Server(), SessionPool()
    with serve_app(server, lifespan="off") as url:
        upstream = client(url, pool)
        lines = upstream.lines("/burst", headers={}, body={"stream": True})
        assert await anext(lines) == ["one"]
        server.release.set()
        assert [line async for batch in lines for line in batch] == ["two", "three"]
        await upstream.aclose()


async def test_the_provider_timeout_applies_per_request() -> None:
    server, pool = Server(), SessionPool()
    with serve_app(server, lifespan="off") as url:
        upstream = client(url, pool, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            await text(upstream, "/hold")
        server.release.set()
        await upstream.aclose()
    assert caught.value.kind == "timeout" and time.monotonic() - start < 3


async def test_a_refused_connection_is_a_connect_error_without_the_secret() -> None:
    pool = SessionPool()
    upstream = client(f"http://127.0.0.1:{free_port()}", pool)
    with pytest.raises(ProviderError) as caught:
        await upstream.request("GET", "/x", headers={"x-api-key": "sk-s3cret"}, secret="sk-s3cret")
    await upstream.aclose()
    assert caught.value.kind == "connect" and "sk-s3cret" not in str(caught.value)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((b"a\nb", b"c\n", b"d"), ["a", "bc", "d"]),
        ((b"a\nb\nc",), ["a", "b", "c"]),
        ((b"a\r", b"\nb\r\n"), ["a", "b"]),  # CRLF split across chunks: one line end
        ((b"a\rb\r",), ["a", "b"]),
        ((b"a\n\nb\n",), ["a", "", "b"]),
        (("x\u2028y\n".encode(), "\u00e9".encode()[:1], "\u00e9".encode()[1:]), ["x\u2028y", "é"]),
    ],
)
async def test_lines_split_on_cr_lf_crlf_only(
    parts: tuple[bytes, ...], expected: list[str]
) -> None:
    batches = [batch async for batch in iter_lines(chunks(*parts))]
    assert [line for batch in batches for line in batch] == expected


def test_importing_aiservice_does_not_import_aiohttp() -> None:
    code = "import sys, aiservice; sys.exit('aiohttp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
