"""A stream's two connections, through the whole app under uvicorn with a real loopback
upstream: the upstream connection goes back to the pool when a stream ends (read to the
end of its body, not dropped at ``[DONE]``), an upstream that stays open after ``[DONE]``
does not hold the client, and a client that leaves before the first event lets the
upstream go without an error in the server's log."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aiservice import create_app
from tests.support.servers import serve_app

KEY = "stream-conn-client-key-01"
BODY = {"model": "pub", "messages": [{"role": "user", "content": "x"}], "stream": True}
HEADERS = {"authorization": f"Bearer {KEY}"}


def event(data: Any) -> bytes:
    return f"data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "tok"}, "finish_reason": None}],
}
LAST = {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


class Upstream:
    """An OpenAI-style streaming upstream that records the client port of every request
    (one port per connection) and whether its client went away."""

    def __init__(self, *, end_after_done: float | None, first_delay: float = 0.0) -> None:
        self.end_after_done = end_after_done  # None: never end the body
        self.first_delay = first_delay
        self.ports: list[int] = []
        self.gone = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.ports.append(scope["client"][1])
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        if self.first_delay and await self._left(self.first_delay, receive):
            return
        for part in (event(CHUNK), event(LAST), event("[DONE]")):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        # The end of the chunked body as a write of its own, after a pause: it reaches the
        # gateway after [DONE], in a read of its own, as it can from a real upstream.
        if self.end_after_done is None:
            await self._left(10.0, receive)
            return
        await asyncio.sleep(self.end_after_done)
        await send({"type": "http.response.body", "body": b""})

    async def _left(self, seconds: float, receive: Any) -> bool:
        try:
            async with asyncio.timeout(seconds):
                if (await receive())["type"] == "http.disconnect":
                    self.gone.set()
                    return True
        except TimeoutError:
            pass
        return False


@pytest.fixture
def gateway_for(make_settings: Any) -> Iterator[Any]:
    stack: list[Any] = []

    def start(upstream: Upstream) -> str:
        up = serve_app(upstream, lifespan="off")
        url = up.__enter__()
        stack.append(up)
        settings = make_settings(
            {
                "providers": {"up": {"type": "openai", "base_url": url + "/v1", "timeout": 5}},
                "models": {"pub": [{"provider": "up", "model": "m"}]},
                "auth": {"api_keys": [KEY]},
                "cache": {"mode": "off"},
                "logging": {"level": "CRITICAL"},
            }
        )
        gw = serve_app(create_app(settings, configure_logs=False))
        stack.append(gw)
        return str(gw.__enter__())

    yield start
    for server in reversed(stack):
        server.__exit__(None, None, None)


async def test_streams_reuse_one_upstream_connection(gateway_for: Any) -> None:
    upstream = Upstream(end_after_done=0.005)
    gateway = gateway_for(upstream)
    async with httpx.AsyncClient(base_url=gateway) as client:
        for _ in range(5):
            response = await client.post("/v1/chat/completions", json=BODY, headers=HEADERS)
            assert response.status_code == 200
            assert response.text.endswith("data: [DONE]\n\n")
    assert len(upstream.ports) == 5
    assert len(set(upstream.ports)) == 1, f"a new upstream connection per stream: {upstream.ports}"


async def test_an_upstream_open_after_done_does_not_hold_the_client(gateway_for: Any) -> None:
    upstream = Upstream(end_after_done=None)
    gateway = gateway_for(upstream)
    async with httpx.AsyncClient(base_url=gateway) as client:
        started = time.monotonic()
        response = await client.post("/v1/chat/completions", json=BODY, headers=HEADERS)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    assert elapsed < 2.0, f"the client waited {elapsed:.1f} s for an upstream that never ends"
    assert await asyncio.to_thread(upstream.gone.wait, 5.0), "the upstream was never let go"


async def test_a_client_leaving_before_the_first_event(
    gateway_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The disconnect listener starts after the first event; a client gone before then is
    noticed at that point, and the stream ends quietly (no error from the server)."""
    upstream = Upstream(end_after_done=0.0, first_delay=0.5)
    gateway = gateway_for(upstream)
    caplog.set_level(logging.ERROR)
    async with httpx.AsyncClient(base_url=gateway, timeout=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/v1/chat/completions", json=BODY, headers=HEADERS)
    # The upstream sends its events at 0.5 s to a gateway whose client has left; the
    # gateway stops reading and closes, the upstream finishes or sees it go.
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/v1/chat/completions", json=BODY, headers=HEADERS)
    assert response.status_code == 200
    assert response.text.endswith("data: [DONE]\n\n")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_a_stream_its_client_left_is_still_accounted(make_settings: Any) -> None:
    """Per-key budgets see the tokens of a stream whose client left before the usage chunk:
    an estimate (the prompt, one output token per chunk relayed), reported once."""
    from aiservice.llm.accounting import UsageRecord

    records: list[UsageRecord] = []
    reported = threading.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"text/event-stream")]})
        for _ in range(200):  # 10 s unless the gateway lets go
            await send({"type": "http.response.body", "body": event(CHUNK), "more_body": True})
            try:
                async with asyncio.timeout(0.05):
                    if (await receive())["type"] == "http.disconnect":
                        return
            except TimeoutError:
                pass
        await send({"type": "http.response.body", "body": b""})

    with serve_app(slow, lifespan="off") as url:
        settings = make_settings(
            {
                "providers": {"up": {"type": "openai", "base_url": url + "/v1", "timeout": 5}},
                "models": {"pub": [{"provider": "up", "model": "m"}]},
                "auth": {"api_keys": [KEY]},
                "cache": {"mode": "off"},
                "logging": {"level": "CRITICAL"},
            }
        )
        app = create_app(settings, configure_logs=False)
        with serve_app(app) as gateway:
            runtime = app.state.aiservice
            assert runtime.gateway is not None

            async def listener(record: UsageRecord) -> None:
                records.append(record)
                reported.set()

            runtime.gateway.accountant.listeners.append(listener)
            prompt = "a prompt of about ten tokens, give or take."
            body = {**BODY, "messages": [{"role": "user", "content": prompt}]}
            seen = 0
            async with httpx.AsyncClient(base_url=gateway) as client:
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=HEADERS
                ) as response:
                    async for line in response.aiter_lines():
                        seen += line.startswith("data: ")
                        if seen == 3:
                            break  # leave mid-stream
            assert await asyncio.to_thread(reported.wait, 5.0), "the stream was not accounted"
            await asyncio.sleep(0.2)  # a second report would have come by now
    assert len(records) == 1
    record = records[0]
    assert record.input_tokens == (len(prompt) + 3) // 4
    assert 3 <= record.output_tokens < 200
    assert record.principal is not None
