"""``limits.requests.stream_idle_seconds``: after a stream's first chunk, an upstream that
keeps its connection busy (SSE keep-alive comments every 50 ms, well inside the read
timeout) but sends no chunk is cut off after the idle bound, with the error event and
``[DONE]``; a stream whose chunks come slower than that bound allows is not."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..conftest import MakeSettings
from ..support.servers import serve_app

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]
IDLE = 0.5
CLOSED = threading.Event()


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


async def _trickle() -> AsyncIterator[bytes]:
    try:
        yield _chunk("first")
        while True:  # busy, never a chunk: only the idle bound ends this
            await asyncio.sleep(0.05)
            yield b": keep-alive\n\n"
    finally:
        CLOSED.set()


async def _slow_chunks() -> AsyncIterator[bytes]:
    for word in ("one ", "two ", "three"):
        yield _chunk(word)
        await asyncio.sleep(IDLE / 2)
    yield _chunk(None, "stop")
    yield b"data: [DONE]\n\n"


async def chat(request: Request) -> Response:
    await request.body()
    body = _trickle() if request.path_params["mode"] == "trickle" else _slow_chunks()
    return StreamingResponse(body, media_type="text/event-stream")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/{mode}/v1/chat/completions", chat, methods=["POST"])])
    with serve_app(app) as url:
        yield url


def _settings(make_settings: MakeSettings, url: str, idle: float | None) -> Any:
    provider = {"type": "openai", "api_key": "sk-test", "timeout": 5.0}
    return make_settings(
        {
            "providers": {
                mode: {**provider, "base_url": f"{url}/{mode}/v1"} for mode in ("trickle", "slow")
            },
            "models": {mode: [{"provider": mode, "model": "m"}] for mode in ("trickle", "slow")},
            "limits": {"requests": {"stream_idle_seconds": idle}},
            "cache": {"mode": "off"},
            "logging": {"level": "CRITICAL"},
        }
    )


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


async def test_a_busy_stream_without_chunks_ends_after_the_idle_bound(
    make_settings: MakeSettings, client_for: Any, upstream: str
) -> None:
    CLOSED.clear()
    async with client_for(_settings(make_settings, upstream, IDLE)) as http:
        started = time.monotonic()
        answer = await http.post(CHAT, json={"model": "trickle", "messages": USER, "stream": True})
        elapsed = time.monotonic() - started
    assert answer.status_code == 200  # the first chunk was sent
    events = _events(answer.text)
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "first"
    error = json.loads(events[-2])["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["message"] == "provider 'trickle' did not answer in time"
    assert error["code"] == "upstream_timeout", error
    assert events[-1] == "[DONE]"
    assert IDLE <= elapsed < IDLE + 2
    assert CLOSED.wait(5), "the upstream connection stayed open"


async def test_chunks_slower_than_reads_but_within_the_idle_bound_pass(
    make_settings: MakeSettings, client_for: Any, upstream: str
) -> None:
    async with client_for(_settings(make_settings, upstream, IDLE)) as http:
        answer = await http.post(CHAT, json={"model": "slow", "messages": USER, "stream": True})
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in _events(answer.text)
        if e != "[DONE]" and json.loads(e).get("choices")
    )
    assert text == "one two three"
