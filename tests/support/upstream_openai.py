"""A real OpenAI-compatible upstream for tests, with switchable failure modes.

Serve ``OpenAIUpstream().app`` with :func:`tests.support.servers.serve_app`. It speaks the
documented Chat Completions / Embeddings / Models wire format:

* chat: replies ``"echo: <last user text>"``; with ``tools`` it calls the first tool with
  ``{"city": <last user text>}``; streams are SSE chunks per word, the usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``;
* embeddings: deterministic small vectors, one per input, ``dimensions`` honoured;
* ``inject(Failure(...), times=N)``: fail the next N requests (all when ``None``) with a
  status (+ ``Retry-After``), a slow answer, or a stream cut after two chunks;
* ``calls`` counts requests per path, ``requests`` keeps the bodies and headers seen;
  ``reset()`` clears both and any injected failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.providers.contract import Failure

SLOW_SECONDS = 6.0


@dataclass
class Seen:
    path: str
    body: Any
    headers: dict[str, str]
    query: dict[str, str]


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content or "")
    return ""


def vector(text: str, size: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 4) for i in range(size)]


@dataclass
class OpenAIUpstream:
    model_ids: list[str] = field(default_factory=lambda: ["gpt-test", "embed-test"])
    failure: Failure | None = None
    failures_left: int | None = None
    calls: Counter[str] = field(default_factory=Counter)
    requests: list[Seen] = field(default_factory=list)
    reply_prefix: str = "echo: "

    def inject(self, failure: Failure | None, times: int | None = None) -> None:
        self.failure, self.failures_left = failure, times

    def reset(self) -> None:
        """Back to normal: no injected failure, no calls or requests recorded."""
        self.inject(None)
        self.calls.clear()
        self.requests.clear()

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )

    def _take_failure(self) -> Failure | None:
        if self.failure is None:
            return None
        if self.failures_left is not None:
            if self.failures_left <= 0:
                return None
            self.failures_left -= 1
        return self.failure

    async def _enter(self, request: Request) -> tuple[Any, Failure | None]:
        body = await request.json() if request.method == "POST" else None
        path = request.url.path
        self.calls[path] += 1
        self.requests.append(Seen(path, body, dict(request.headers), dict(request.query_params)))
        return body, self._take_failure()

    async def _fail(self, failure: Failure, request: Request | None = None) -> Response | None:
        if failure.kind == "slow":
            # Answer late, but stop as soon as the client gave up so shutdown is quick.
            deadline = asyncio.get_running_loop().time() + SLOW_SECONDS
            while asyncio.get_running_loop().time() < deadline:
                if request is not None and await request.is_disconnected():
                    break
                await asyncio.sleep(0.05)
            return None
        if failure.kind == "drop":
            return None
        headers = {}
        if failure.retry_after is not None:
            headers["retry-after"] = f"{failure.retry_after:g}"
        body = {"error": {"message": failure.message, "type": "test", "code": None}}
        return JSONResponse(body, status_code=failure.status, headers=headers)

    async def chat(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        text = last_user_text(body.get("messages", []))
        model = body.get("model", "")
        prompt = sum(len(str(m.get("content") or "").split()) + 1 for m in body["messages"])
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            call = {
                "id": "call_upstream_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps({"city": text})},
            }
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": self.reply_prefix + text}
            finish = "stop"
        completion_tokens = len(str(message.get("content") or "x y").split())
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        }
        if body.get("stream"):
            drop = failure is not None and failure.kind == "drop"
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._events(model, message, finish, usage if include else None, drop)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-upstream",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
        )

    async def _events(
        self,
        model: str,
        message: dict[str, Any],
        finish: str,
        usage: dict[str, int] | None,
        drop: bool,
    ) -> AsyncIterator[bytes]:
        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {
                "id": "chatcmpl-upstream",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            head = {**call, "index": 0, "function": {"name": call["function"]["name"]}}
            yield event([{"index": 0, "delta": {"tool_calls": [head]}}])
            args = call["function"]["arguments"]
            for piece in (args[:5], args[5:]):
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                yield event([{"index": 0, "delta": delta}])
        words = str(message.get("content") or "").split(" ")
        for i, word in enumerate(words):
            yield event([{"index": 0, "delta": {"content": word if i == 0 else " " + word}}])
            if drop and i == 1:
                await asyncio.sleep(0.05)
                raise ConnectionResetError("simulated upstream drop")
            await asyncio.sleep(0)
        yield event([{"index": 0, "delta": {}, "finish_reason": finish}])
        if usage is not None:
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"

    async def embeddings(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": vector(str(t), size)}
            for i, t in enumerate(inputs)
        ]
        tokens = sum(len(str(t).split()) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": list(reversed(data)),  # real servers may answer out of order
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(self, request: Request) -> Response:
        _, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        data = [
            {"id": m, "object": "model", "created": 1, "owned_by": "test"} for m in self.model_ids
        ]
        return JSONResponse({"object": "list", "data": data})
