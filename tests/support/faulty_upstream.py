"""A deliberately faulty OpenAI-compatible upstream on a raw asyncio socket server.

Standard library only (``bench/faults.py`` uses it too). It speaks just enough HTTP/1.1
(keep-alive, ``Content-Length`` bodies) to answer ``POST /v1/chat/completions``, and each
request gets the :data:`Fault` that ``plan()`` picks for it:

* ``ok``: a completion echoing ``"echo: <last user text>"`` (SSE chunks when streaming);
  ``slow_ok``: the same after ``slow_seconds``;
* ``500`` / ``429`` (with ``Retry-After``): an error envelope;
* ``reset``: the connection is reset (RST) before any byte of the answer;
* ``stall``: nothing is sent for ``stall_seconds`` (past the client's timeout);
* ``surrogate``: a 200 whose content is the JSON escape ``"\\ud800"`` (a lone surrogate);
* ``bad_utf8``: a 200 whose body has bytes that are not UTF-8;
* ``truncated``: a 200 whose JSON body stops halfway;
* ``not_json``: a 200 with an HTML body;
* ``wrong_shape``: a 200 with JSON of an unexpected shape (``choices`` is a string);
* mid-stream faults, after two good chunks: ``drop_mid`` (reset), ``stall_mid``,
  ``garbage_mid`` (an event that is not JSON), ``surrogate_mid``, ``wrong_shape_mid``,
  ``eof_mid`` (a clean close without ``finish_reason`` or ``[DONE]``);
* ``surrogate_first``: a stream whose very first chunk holds a lone surrogate.

Non-stream requests given a stream fault are answered ``ok``. ``GET /stats`` answers
the faults dealt so far (``calls``) as JSON.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

Fault = Literal[
    "ok",
    "slow_ok",
    "500",
    "429",
    "reset",
    "stall",
    "surrogate",
    "bad_utf8",
    "truncated",
    "not_json",
    "wrong_shape",
    "drop_mid",
    "stall_mid",
    "garbage_mid",
    "surrogate_mid",
    "wrong_shape_mid",
    "eof_mid",
    "surrogate_first",
]
STREAM_ONLY = {"surrogate_first"}
MID_STREAM = {
    "drop_mid",
    "stall_mid",
    "garbage_mid",
    "surrogate_mid",
    "wrong_shape_mid",
    "eof_mid",
}

__all__ = ["MID_STREAM", "STREAM_ONLY", "FaultyUpstream", "Fault", "random_plan", "scripted"]


def scripted(faults: list[Fault], then: Fault = "ok") -> Callable[[], Fault]:
    """The given faults in order, one per request, then ``then`` for every later one."""
    queue = list(faults)

    def plan() -> Fault:
        return queue.pop(0) if queue else then

    return plan


def random_plan(rate: float, faults: list[Fault], seed: int = 7) -> Callable[[], Fault]:
    """``rate`` of the calls fail, with a fault drawn evenly from ``faults``."""
    rng = random.Random(seed)

    def plan() -> Fault:
        return rng.choice(faults) if rng.random() < rate else "ok"

    return plan


def _response(status: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _json(status: str, value: Any, extra: str = "") -> bytes:
    return _response(status, json.dumps(value).encode(), "application/json", extra)


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def _event(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


class FaultyUpstream:
    """Serve with :meth:`serving` (its own thread and event loop); ``calls`` counts the
    faults dealt."""

    def __init__(
        self,
        plan: Callable[[], Fault] = lambda: "ok",
        *,
        stall_seconds: float = 3.0,
        slow_seconds: float = 0.5,
        retry_after: str = "1",
        reply_prefix: str = "echo: ",
    ) -> None:
        self.plan = plan
        self.stall_seconds = stall_seconds
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.reply_prefix = reply_prefix
        self.calls: Counter[str] = Counter()

    # -- HTTP -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                )
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b"{}"
                if lines[0].startswith("GET /stats"):
                    writer.write(_json("200 OK", dict(self.calls)))
                    await writer.drain()
                    continue
                if not await self._answer(json.loads(raw), writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end quietly (asyncio logs a handler that ends cancelled)
        finally:
            writer.close()

    async def _answer(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Write the answer; ``False`` when the connection must end."""
        fault = self.plan()
        stream = bool(body.get("stream"))
        if fault in MID_STREAM | STREAM_ONLY and not stream:
            fault = "ok"
        self.calls[fault] += 1
        model = str(body.get("model") or "")
        text = self.reply_prefix + _last_user_text(body)
        if fault == "reset":
            _reset(writer)
            return False
        if fault == "stall":
            await asyncio.sleep(self.stall_seconds)
            return False
        if fault == "slow_ok":
            await asyncio.sleep(self.slow_seconds)
            fault = "ok"
        if stream and fault in MID_STREAM | STREAM_ONLY | {"ok"}:
            return await self._stream(writer, model, text, fault)
        writer.write(self._plain(fault, model, text))
        await writer.drain()
        return True

    def _plain(self, fault: Fault, model: str, text: str) -> bytes:
        error = {"error": {"message": f"simulated {fault}", "type": "test", "code": None}}
        answers: dict[str, Callable[[], bytes]] = {
            "ok": lambda: _json("200 OK", _completion(model, text)),
            "500": lambda: _json("500 Internal Server Error", error),
            "429": lambda: _json(
                "429 Too Many Requests", error, f"retry-after: {self.retry_after}\r\n"
            ),
            "surrogate": lambda: _response(
                "200 OK",
                json.dumps(_completion(model, "x")).replace('"x"', '"bad \\ud800 text"').encode(),
                "application/json",
            ),
            "bad_utf8": lambda: _response(
                "200 OK",
                json.dumps(_completion(model, "x")).encode().replace(b'"x"', b'"\xff\xfe\xfa"'),
                "application/json",
            ),
            "truncated": lambda: _response(
                "200 OK", json.dumps(_completion(model, text)).encode()[:40], "application/json"
            ),
            "not_json": lambda: _response("200 OK", b"<html>gateway</html>", "application/json"),
            "wrong_shape": lambda: _json("200 OK", {"choices": [{"message": 42}]}),
        }
        return answers[fault]()

    async def _stream(
        self, writer: asyncio.StreamWriter, model: str, text: str, fault: Fault
    ) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )

        async def send(data: bytes) -> None:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        first = _event(model, {"role": "assistant", "content": "x"})
        if fault == "surrogate_first":
            first = first.replace(b'"x"', b'"\\udfff"')
        await send(first.replace(b'"x"', b'""'))
        words = text.split(" ")
        for i, word in enumerate(words):
            await send(_event(model, {"content": word if i == 0 else " " + word}))
            if i == 1 and fault in MID_STREAM:
                return await self._break(writer, send, model, fault)
        await send(_event(model, {}, "stop"))
        await send(b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _break(
        self,
        writer: asyncio.StreamWriter,
        send: Callable[[bytes], Any],
        model: str,
        fault: Fault,
    ) -> bool:
        if fault == "drop_mid":
            await asyncio.sleep(0.02)
            _reset(writer)
            return False
        if fault == "stall_mid":
            await asyncio.sleep(self.stall_seconds)
            return False
        if fault == "eof_mid":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        bad = {
            "garbage_mid": b"data: {this is not json\n\n",
            "surrogate_mid": _event(model, {"content": "x"}).replace(b'"x"', b'"\\ud800"'),
            "wrong_shape_mid": b'data: {"choices": "not a list", "id": "x"}\n\n',
        }[fault]
        await send(bad)
        await send(_event(model, {}, "stop"))
        await send(b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    # -- serving ------------------------------------------------------------------------

    def run_forever(self, port: int) -> None:
        """Serve on 127.0.0.1:``port`` in this thread until the process ends."""

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", port, backlog=1024)
            async with server:
                await server.serve_forever()

        asyncio.run(main())

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on 127.0.0.1 (ephemeral port) in a thread; yields the base URL."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
            box["server"] = server
            box["port"] = server.sockets[0].getsockname()[1]
            started.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            try:
                loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass
            finally:
                loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("faulty upstream did not start")
        try:
            yield f"http://127.0.0.1:{box['port']}"
        finally:

            def stop() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            loop.call_soon_threadsafe(stop)
            thread.join(timeout=10)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed upstream or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
