"""Bounded upstream answers (``limits.max_upstream_body_bytes`` / ``_line_bytes``): a real
loopback upstream that never stops sending (one endless body, one endless stream line, a
huge declared length, a huge error body) costs the gateway a 502 envelope (or a fallback)
and a step a failed call, and the upstream is cut off soon after the bound: the process
holds about the bound, not what the upstream sends."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aiservice.orchestrator.kinds import ErrorKind
from aiservice.orchestrator.setup import get_orchestrator
from aiservice.transport import limits
from aiservice.transport.errors import BodyTooLargeError
from aiservice.transport.lines import iter_lines

from ..conftest import MakeSettings
from ..orchestrator.conftest import orchestrator_app
from ..support.endless import Endless
from ..support.servers import serve_app

MAX_BODY = 1024 * 1024
MAX_LINE = 256 * 1024
CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]


def _app(endless: Endless) -> Starlette:
    async def chat(request: Request) -> Response:
        mode = request.path_params["mode"]
        await request.body()
        if mode == "ok":
            return JSONResponse(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "small"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        if mode == "line":  # a stream whose first event never ends
            head = (
                b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"'
            )
            return StreamingResponse(endless.body(mode, head), media_type="text/event-stream")
        headers = {"content-length": str(1 << 40)} if mode == "declared" else None
        status = 500 if mode == "error" else 200
        return StreamingResponse(
            endless.body(mode, b'{"choices":"'),
            status_code=status,
            media_type="application/json",
            headers=headers,
        )

    async def function(request: Request) -> Response:
        return StreamingResponse(endless.body("step", b'{"a":"'), media_type="application/json")

    return Starlette(
        routes=[
            Route("/{mode}/v1/chat/completions", chat, methods=["POST"]),
            Route("/fn", function, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Endless]]:
    endless = Endless()
    with serve_app(_app(endless)) as url:
        yield url, endless


@pytest.fixture
def endless(upstream: tuple[str, Endless]) -> Iterator[tuple[str, Endless]]:
    before = limits.current()
    upstream[1].reset()
    yield upstream
    limits.configure(before.max_body_bytes, before.max_line_bytes)  # the app set ours


def _settings(make_settings: MakeSettings, url: str, **extra: Any) -> Any:
    common = {"type": "openai", "api_key": "sk-test", "max_retries": 2, "retry_backoff": 0.01}
    providers = {
        mode: {**common, "base_url": f"{url}/{mode}/v1", "timeout": 10.0}
        for mode in ("endless", "line", "declared", "error", "ok")
    }
    models = {mode: [{"provider": mode, "model": "m"}] for mode in providers}
    models["with-fallback"] = [
        {"provider": "endless", "model": "m"},
        {"provider": "ok", "model": "m"},
    ]
    return make_settings(
        {
            "providers": providers,
            "models": models,
            "limits": {"max_upstream_body_bytes": MAX_BODY, "max_upstream_line_bytes": MAX_LINE},
            "cache": {"mode": "off"},
            "logging": {"level": "CRITICAL"},
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("mode", "stream"),
    [("endless", False), ("declared", False), ("error", False), ("line", True)],
)
async def test_an_oversize_answer_is_a_502_envelope_and_is_not_read_to_the_end(
    make_settings: MakeSettings,
    client_for: Any,
    endless: tuple[str, Endless],
    mode: str,
    stream: bool,
) -> None:
    url, sent = endless
    tracemalloc.start()
    try:
        async with client_for(_settings(make_settings, url)) as http:
            started = time.monotonic()
            answer = await http.post(CHAT, json={"model": mode, "messages": USER, "stream": stream})
            elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["type"] == "upstream_error" and error["code"] == "upstream_error"
    key = "max_upstream_line_bytes" if stream else "max_upstream_body_bytes"
    assert key in error["message"]
    sent.cut_off(mode)
    if mode != "declared":  # refused on its header alone: nothing sent to wait for
        assert sent.sent[mode] > MAX_BODY if not stream else sent.sent[mode] > MAX_LINE
    # Not retried (max_retries 2): the next answer would be as large.
    assert elapsed < 5
    # The whole process (upstream thread included) held a few times the bound at most.
    assert peak < 16 * MAX_BODY, peak


async def test_an_oversize_answer_falls_back_to_the_next_deployment(
    make_settings: MakeSettings, client_for: Any, endless: tuple[str, Endless]
) -> None:
    url, sent = endless
    async with client_for(_settings(make_settings, url)) as http:
        answer = await http.post(CHAT, json={"model": "with-fallback", "messages": USER})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "small"
    sent.cut_off("endless")


async def test_an_oversize_step_answer_fails_the_step_once(
    make_settings: MakeSettings, endless: tuple[str, Endless]
) -> None:
    url, sent = endless
    step = {"url": f"{url}/fn", "retry": {"max_attempts": 3, "initial_delay": 0.01}}
    settings = _settings(make_settings, url, flows={"f": {"steps": {"s": step}}}, orchestrator={})
    async with orchestrator_app(settings) as (client, runtime):
        response = await client.post("/orchestrate/f", json={})
        record = await get_orchestrator(runtime).store.get(response.json()["execution_id"])
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == ErrorKind.STEP_FAILED.value
    assert record is not None
    state = record.steps["s"]
    assert state.error_kind is ErrorKind.RESPONSE_TOO_LARGE
    assert state.attempts == 1  # not retried
    assert "max_upstream_body_bytes" in (state.error or "")
    sent.cut_off("step")


# -- the line bound itself ------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _lines(*parts: bytes, max_line: int | None = 8) -> list[str]:
    return [line async for batch in iter_lines(_chunks(*parts), max_line) for line in batch]


@pytest.mark.parametrize(
    "parts",
    [
        (b"0123", b"4567", b"89"),  # one unfinished line in many small chunks
        (b"ok\n0123456789\n",),  # a finished line, over in one chunk
        (b"0123456", b"789\nok\n"),  # finished by the chunk that puts it over
        (b"0123456789\r",),  # held for a possible CRLF
    ],
)
async def test_a_line_over_the_bound_raises(parts: tuple[bytes, ...]) -> None:
    with pytest.raises(BodyTooLargeError, match="max_upstream_line_bytes"):
        await _lines(*parts)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ((b"0123", b"4567", b"\n", b"ab"), ["01234567", "ab"]),
        ((b"a", b"b", b"\r", b"c\n"), ["ab", "c"]),
        ((b"a\r", b"b", b"c\n"), ["a", "bc"]),
        ((b"01234567\r\n" * 3,), ["01234567"] * 3),
    ],
)
async def test_lines_at_or_under_the_bound_pass(
    parts: tuple[bytes, ...], expected: list[str]
) -> None:
    assert await _lines(*parts) == expected
