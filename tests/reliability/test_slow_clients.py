"""Slow and broken clients against a real uvicorn on loopback, over raw sockets.

A body that stops arriving is answered 408 and the connection closed after
``limits.body_timeout_seconds``; an oversized request head is refused at
``server.max_header_bytes``; an idle keep-alive connection is closed after
``server.keepalive_timeout_seconds``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from aiservice import Settings, create_app
from aiservice.platforms.serve import head_bounded_http, uvicorn_config

from ..conftest import MakeSettings
from ..support.servers import free_port
from .conftest import CLIENT_KEY, edge_config


@contextmanager
def _served(settings: Settings, http: str = "h11") -> Iterator[int]:
    """The app under uvicorn configured as the container bridge does; yields the port."""
    port = free_port()
    server_settings = settings.server
    config = uvicorn_config(
        create_app(settings, configure_logs=False),
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="warning",
        h11_max_incomplete_event_size=server_settings.max_header_bytes,
        timeout_keep_alive=server_settings.keepalive_timeout_seconds,
        head_timeout=settings.limits.body_timeout_seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    sock.settimeout(timeout)
    start = time.monotonic()
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


def _status_and_body(data: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def _settings(make_settings: MakeSettings, url: str, **extra: Any) -> Settings:
    return make_settings(edge_config(url, **extra))


def test_a_stalled_body_gets_408_and_the_connection_is_closed(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = _settings(make_settings, edge_function_url, limits={"body_timeout_seconds": 1})
    with _served(settings) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            + f"Authorization: Bearer {CLIENT_KEY}\r\n\r\n".encode()
            + b'{"model": "fake", '
        )
        data, elapsed = _read_all(sock, timeout=10)
    status, body = _status_and_body(data)
    assert status == 408 and body["error"]["code"] == "body_timeout"
    assert b"connection: close" in data.lower()
    assert 0.8 < elapsed < 5, elapsed


def test_a_trickled_body_hits_the_same_deadline(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = _settings(make_settings, edge_function_url, limits={"body_timeout_seconds": 2})
    with _served(settings) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /orchestrate/anything HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n"
            + f"X-API-Key: {CLIENT_KEY}\r\n\r\n".encode()
        )
        start = time.monotonic()
        for _ in range(6):  # a byte every 0.3 s: never idle for 2 s, still too slow
            sock.sendall(b" ")
            time.sleep(0.3)
        data, _ = _read_all(sock, timeout=10)
        elapsed = time.monotonic() - start
    assert _status_and_body(data)[0] == 408
    # The deadline counts from the request head; an idle timer would fire at 1.5 + 2 s.
    assert 1.8 < elapsed < 3.2, elapsed


def test_without_a_key_a_declared_body_is_never_waited_for(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = _settings(make_settings, edge_function_url)  # default 30 s body timeout
    with _served(settings) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n"
        )
        data, elapsed = _read_all(sock, timeout=10)
    assert _status_and_body(data)[0] == 401
    assert elapsed < 5  # answered and closed at once, not after the body timeout


@pytest.mark.parametrize("http", ["h11", head_bounded_http()])
def test_oversized_request_head_is_refused(
    make_settings: MakeSettings, edge_function_url: str, http: str
) -> None:
    settings = _settings(make_settings, edge_function_url, server={"max_header_bytes": 4096})
    with _served(settings, http) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Small: 1\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: ")
            try:  # the head streams in; the server refuses once it passes the limit
                for _ in range(64):
                    sock.sendall(b"a" * 1024)
                    time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                data, _ = _read_all(sock, timeout=5)
            except ConnectionResetError:
                data = b""
    if http == "h11":
        assert not data or data.startswith(b"HTTP/1.1 400")
    else:  # httptools, bounded by aiservice: the envelope, never the whole head kept
        assert not data or data.startswith(b"HTTP/1.1 431")
        if data:
            assert _status_and_body(data)[1]["error"]["code"] == "header_too_large"


def test_a_large_body_is_not_taken_for_a_large_head(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    """The bounded httptools parser counts head bytes only: a body many times the head
    limit, arriving in many reads, is served."""
    settings = _settings(make_settings, edge_function_url, server={"max_header_bytes": 4096})
    body = json.dumps({"model": "fake", "input": ["x" * 60_000] * 4}).encode()
    with _served(settings, head_bounded_http()) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                "POST /v1/embeddings HTTP/1.1\r\nHost: t\r\n"
                f"Authorization: Bearer {CLIENT_KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            sock.sendall(head)
            for start in range(0, len(body), 8192):
                sock.sendall(body[start : start + 8192])
            data, _ = _read_all(sock, timeout=10)
    assert _status_and_body(data)[0] == 200


def test_idle_keep_alive_connection_is_closed(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = _settings(make_settings, edge_function_url, server={"keepalive_timeout_seconds": 1})
    with _served(settings) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
        data, idle = _read_all(sock, timeout=10)
    assert data.startswith(b"HTTP/1.1 200")
    assert 0.8 < idle < 5, idle


def test_a_trickled_head_gets_408_at_the_deadline(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    """uvicorn arms no timer inside a request head: the bounded parser gives it the body's
    deadline, so a client sending a header byte a second cannot hold the connection."""
    settings = _settings(make_settings, edge_function_url, limits={"body_timeout_seconds": 1})
    with _served(settings, head_bounded_http()) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            start = time.monotonic()
            try:
                for _ in range(8):  # a byte every 0.3 s: the head never completes in time
                    time.sleep(0.3)
                    sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                pass
            data, _ = _read_all(sock, timeout=10)
            elapsed = time.monotonic() - start
    status, body = _status_and_body(data)
    assert status == 408 and body["error"]["code"] == "head_timeout"
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    ("request_line", "anthropic"),
    [
        (b"POST /v1/messages?beta=true HTTP/1.1", True),
        (b"POST /v1/chat/completions HTTP/1.1", False),
    ],
)
def test_a_refused_head_answers_in_the_shape_of_the_api_it_named(
    make_settings: MakeSettings, edge_function_url: str, request_line: bytes, anthropic: bool
) -> None:
    """The 408 and 431 of the head parser come before routing; the request line is known
    by then, and an Anthropic client gets Anthropic's error body, as from every other layer."""
    settings = _settings(
        make_settings,
        edge_function_url,
        limits={"body_timeout_seconds": 1},
        server={"max_header_bytes": 4096},
    )
    with _served(settings, head_bounded_http()) as port:
        bodies = []
        for big in (False, True):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(request_line + b"\r\nHost: t\r\nX-Pad: ")
                if big:  # past the head limit: 431
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        for _ in range(8):
                            sock.sendall(b"a" * 1024)
                            time.sleep(0.01)
                data, _ = _read_all(sock, timeout=10)  # else the deadline: 408
            bodies.append(_status_and_body(data))
    (late, late_body), (large, large_body) = bodies
    assert (late, large) == (408, 431)
    for body in (late_body, large_body):
        if anthropic:
            assert body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"]
        else:
            assert body["error"]["code"] in ("head_timeout", "header_too_large")


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    settings = _settings(make_settings, edge_function_url, limits={"body_timeout_seconds": 1})
    with _served(settings, head_bounded_http()) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            data, elapsed = _read_all(sock, timeout=10)
            # The server is still there for a client that does send a request.
            with socket.create_connection(("127.0.0.1", port)) as other:
                other.sendall(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                other.settimeout(5)
                assert other.recv(65536).startswith(b"HTTP/1.1 200")
    assert data == b""
    assert 0.8 < elapsed < 5, elapsed
