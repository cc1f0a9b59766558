"""The body clock runs only while a body is awaited: a buffered body sets no timer.

:func:`~aiservice.security.eager.first_step` runs ``receive()`` up to its first
suspension; :class:`~aiservice.security.eager.Resumed` finishes one that suspended, under
the deadline. Real ASGI messages, a real event loop, no server (the stalled and trickled
bodies against uvicorn are in ``tests/reliability/test_slow_clients.py``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from aiservice.security import body_limit
from aiservice.security.body_limit import BodyLimitMiddleware
from aiservice.security.eager import Resumed, first_step

BODY = b'{"model": "m"}'
SCOPE: Scope = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "headers": [(b"content-length", str(len(BODY)).encode())],
}


async def _value(result: str) -> str:
    return result


async def _after(event: asyncio.Event, result: str) -> str:
    await event.wait()
    return result


async def test_a_coroutine_that_does_not_suspend_completes_in_its_first_step() -> None:
    assert first_step(_value("now")) == (True, "now")


async def test_a_suspended_coroutine_is_finished_where_it_stopped() -> None:
    event = asyncio.Event()
    done, pending = first_step(_after(event, "later"))
    assert not done
    asyncio.get_running_loop().call_soon(event.set)
    assert await Resumed[str](pending) == "later"


async def test_cancelling_the_awaiting_task_reaches_the_suspended_coroutine() -> None:
    cleaned = asyncio.Event()

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    _, pending = first_step(waits())

    async def finish() -> None:
        await Resumed[None](pending)

    task = asyncio.create_task(finish())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_an_exception_of_the_first_step_propagates() -> None:
    async def fails() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        first_step(fails())


class _App:
    """Reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            self.body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(self.body)).encode()})


async def _serve(receive: Receive, timeout: float = 5.0) -> tuple[_App, list[Message]]:
    app, sent = _App(), []

    async def send(message: Message) -> None:
        sent.append(message)

    await BodyLimitMiddleware(app, max_body_bytes=1024, body_timeout=timeout)(SCOPE, receive, send)
    return app, sent


async def test_a_buffered_body_sets_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_timer(when: float | None) -> Any:
        raise AssertionError("a body already received needs no clock")

    monkeypatch.setattr(body_limit.asyncio, "timeout_at", no_timer)

    async def receive() -> Message:
        return {"type": "http.request", "body": BODY, "more_body": False}

    app, sent = await _serve(receive)
    assert app.body == BODY and sent[0]["status"] == 200


async def test_a_body_still_on_its_way_is_received_on_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clocks: list[float | None] = []
    real = asyncio.timeout_at

    def counted(when: float | None) -> asyncio.Timeout:
        clocks.append(when)
        return real(when)

    monkeypatch.setattr(body_limit.asyncio, "timeout_at", counted)
    arrived = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, arrived.set)

    async def receive() -> Message:
        await arrived.wait()
        return {"type": "http.request", "body": BODY, "more_body": False}

    app, sent = await _serve(receive)
    assert app.body == BODY and sent[0]["status"] == 200
    assert len(clocks) == 1


async def test_a_body_that_never_comes_is_408_at_the_deadline() -> None:
    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app, sent = await _serve(receive, timeout=0.05)
    assert sent[0]["status"] == 408
    error = json.loads(sent[1]["body"])["error"]
    assert error["param"] == "limits.body_timeout_seconds" and app.body == b""


async def test_a_receive_that_is_not_a_coroutine_still_runs_on_the_clock() -> None:
    # ASGI allows any awaitable: a future is awaited under the timeout as before.
    loop = asyncio.get_running_loop()

    def receive() -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = loop.create_future()
        loop.call_soon(future.set_result, {"type": "http.request", "body": BODY})
        return future

    app, sent = await _serve(receive)  # type: ignore[arg-type]
    assert app.body == BODY and sent[0]["status"] == 200
