"""A real Ollama-compatible upstream for tests (documented ``/api`` wire format).

* ``POST /api/chat``: replies ``"echo: <last user text>"`` (or a call to the first tool,
  with object arguments); ``stream`` (Ollama's default is true) sends NDJSON lines with
  ``message.content`` pieces and a final ``done: true`` line with the eval counts;
* ``POST /api/embed``: ``{"embeddings": [[...]], "prompt_eval_count": N}``;
* ``GET /api/tags``: the installed models (``pull`` adds to them);
* ``POST /api/pull``: NDJSON progress (``pulling manifest``, per-layer ``completed``/``total``,
  ``success``); an unknown model name (``missing*``) streams an ``{"error": ...}`` line;
* ``inject`` / ``calls`` / ``requests`` as in :mod:`tests.support.upstream_openai`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.upstream_openai import OpenAIUpstream, Seen, last_user_text, vector

NDJSON = "application/x-ndjson"


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value) + "\n").encode()


@dataclass
class OllamaUpstream(OpenAIUpstream):
    installed: list[str] = field(default_factory=lambda: ["llama3.2:latest", "nomic-embed-text"])

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/chat", self.chat, methods=["POST"]),
                Route("/api/embed", self.embeddings, methods=["POST"]),
                Route("/api/tags", self.tags, methods=["GET"]),
                Route("/api/pull", self.pull, methods=["POST"]),
            ]
        )

    async def _fail(self, failure: Any, request: Request | None = None) -> Response | None:
        response = await super()._fail(failure, request)
        if response is not None:  # Ollama's error body is {"error": "<message>"}
            return JSONResponse(
                {"error": failure.message},
                status_code=response.status_code,
                headers={k: v for k, v in response.headers.items() if k == "retry-after"},
            )
        return None

    async def chat(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        text = last_user_text(body.get("messages", []))
        prompt = sum(len(str(m.get("content") or "").split()) + 1 for m in body["messages"])
        message: dict[str, Any] = {"role": "assistant", "content": "echo: " + text}
        if body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": name, "arguments": {"city": text}}}],
            }
        final = {
            "model": body["model"],
            "created_at": "2024-07-22T20:33:28.123648Z",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt,
            "eval_count": max(1, len(message["content"].split())),
        }
        if body.get("stream", True):
            drop = failure is not None and failure.kind == "drop"
            return StreamingResponse(
                self._lines(body["model"], message, final, drop), media_type=NDJSON
            )
        return JSONResponse({**final, "message": message})

    async def _lines(
        self, model: str, message: dict[str, Any], final: dict[str, Any], drop: bool
    ) -> AsyncIterator[bytes]:
        stamp = {"model": model, "created_at": "2024-07-22T20:33:28Z", "done": False}
        if message.get("tool_calls"):
            yield _line({**stamp, "message": message})
        words = message["content"].split(" ") if message["content"] else []
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            yield _line({**stamp, "message": {"role": "assistant", "content": piece}})
            if drop and i == 1:
                await asyncio.sleep(0.05)
                raise ConnectionResetError("simulated upstream drop")
        yield _line({**final, "message": {"role": "assistant", "content": ""}})

    async def embeddings(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = int(body.get("dimensions") or 8)
        tokens = sum(len(str(t).split()) for t in inputs)
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [vector(str(t), size) for t in inputs],
                "prompt_eval_count": tokens,
            }
        )

    async def tags(self, request: Request) -> Response:
        _, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        models = [{"name": m, "model": m, "size": 1000} for m in self.installed]
        return JSONResponse({"models": models})

    async def pull(self, request: Request) -> Response:
        body, failure = await self._enter(request)
        if failure is not None and (response := await self._fail(failure, request)) is not None:
            return response
        return StreamingResponse(self._progress(str(body.get("model"))), media_type=NDJSON)

    async def _progress(self, model: str) -> AsyncIterator[bytes]:
        yield _line({"status": "pulling manifest"})
        if model.startswith("missing"):
            yield _line({"error": "pull model manifest: file does not exist"})
            return
        for completed in (0, 512, 1024):
            yield _line(
                {
                    "status": "pulling a1b2",
                    "digest": "sha256:a1b2",
                    "total": 1024,
                    "completed": completed,
                }
            )
        yield _line({"status": "verifying sha256 digest"})
        self.installed.append(model)
        yield _line({"status": "success"})


__all__ = ["OllamaUpstream", "Seen"]
