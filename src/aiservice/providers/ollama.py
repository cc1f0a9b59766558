"""``ollama``: Ollama's native API (``/api/chat`` NDJSON streaming, ``/api/embed``,
``/api/tags``, ``/api/pull``).

Config: ``base_url`` (default ``http://127.0.0.1:11434``, e.g. a Cloud Run sidecar),
``timeout``, ``headers``; ``api_key`` is optional (sent as a bearer token, for Ollama behind
an authenticating proxy).

Translation (pure functions, tested with recorded payloads): OpenAI messages become Ollama
messages (image parts must be ``data:`` URLs and become ``images``; tool-call arguments
become objects), sampling parameters go into ``options`` (``max_tokens`` → ``num_predict``),
``response_format`` becomes ``format`` (``"json"`` or the JSON schema). Ollama's counts
``prompt_eval_count`` / ``eval_count`` are the token usage.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ..transport.auth import NO_AUTH
from . import wire
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult, ProviderError
from .http import KeyHeaders, iter_ndjson
from .upstream import build_client

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["DEFAULT_BASE_URL", "OllamaProvider", "from_ollama", "to_ollama"]

DEFAULT_BASE_URL = "http://127.0.0.1:11434"

# OpenAI request field -> Ollama ``options`` field.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
}


def _bad_request(message: str) -> ProviderError:
    return ProviderError(message, kind="http", status=400, provider="ollama")


def _images(content: Any) -> list[str]:
    images = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if not url.startswith("data:") or "," not in url:
                raise _bad_request("ollama accepts images only as data: URLs (base64)")
            images.append(url.split(",", 1)[1])
    return images


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = "system" if message.get("role") == "developer" else message.get("role", "user")
    out: dict[str, Any] = {"role": role, "content": wire.message_text(message)}
    if images := _images(message.get("content")):
        out["images"] = images
    if calls := message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "function": {
                    "name": (c.get("function") or {}).get("name", ""),
                    "arguments": wire.parse_arguments((c.get("function") or {}).get("arguments")),
                }
            }
            for c in calls
        ]
    return out


def _format(response_format: Any) -> Any:
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or "json"
    return None


def to_ollama(model: str, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The ``/api/chat`` body for an OpenAI-style request."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.get("messages", [])],
        "stream": stream,
    }
    options = {_OPTIONS[k]: v for k, v in request.items() if k in _OPTIONS and v is not None}
    stop = request.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if options:
        body["options"] = options
    if request.get("tools") and request.get("tool_choice") != "none":
        body["tools"] = request["tools"]
    if (fmt := _format(request.get("response_format"))) is not None:
        body["format"] = fmt
    return body


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        digest = hashlib.sha256(f"{i}{function.get('name')}{text}".encode()).hexdigest()[:24]
        calls.append(
            {
                "id": call.get("id") or f"call_{digest}",
                "type": "function",
                "function": {"name": function.get("name", ""), "arguments": text},
            }
        )
    return calls


def _finish(data: dict[str, Any], has_tools: bool) -> str:
    if has_tools:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _usage(data: dict[str, Any]) -> dict[str, int]:
    return wire.usage(int(data.get("prompt_eval_count") or 0), int(data.get("eval_count") or 0))


def from_ollama(data: Any, model: str) -> ChatCompletion:
    """A ``chat.completion`` from a non-streamed ``/api/chat`` answer."""
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise ProviderError("ollama returned an unexpected body", kind="protocol")
    calls = _tool_calls(data["message"])
    message: dict[str, Any] = {"role": "assistant", "content": data["message"].get("content", "")}
    if calls:
        message = {"role": "assistant", "content": message["content"] or None, "tool_calls": calls}
    return wire.completion(
        data.get("model") or model, message, _finish(data, bool(calls)), _usage(data)
    )


class _Stream:
    """Turns Ollama's NDJSON lines into OpenAI chunks."""

    def __init__(self, model: str) -> None:
        self.id = wire.new_id()
        self.model = model
        self.created = int(time.time())
        self.tool_index = 0
        self.done = False

    def chunks(self, line: dict[str, Any]) -> list[ChatChunk]:
        if line.get("error"):
            raise ProviderError(f"ollama failed mid-stream: {line['error']}", kind="protocol")
        message = line.get("message") or {}
        out = []
        if message.get("content"):
            out.append(self._chunk({"content": message["content"]}))
        for call in _tool_calls(message):
            out.append(self._chunk({"tool_calls": [{"index": self.tool_index, **call}]}))
            self.tool_index += 1
        if line.get("done"):
            self.done = True
            out.append(self._chunk({}, _finish(line, self.tool_index > 0)))
            out.append(wire.usage_chunk(self.id, self.model, self.created, _usage(line)))
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        return wire.chunk(self.id, self.model, self.created, delta, finish)

    def first(self) -> ChatChunk:
        return self._chunk({"role": "assistant", "content": ""})


class OllamaProvider:
    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        self.name = name
        self.config = config
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        # The key (for an authenticating proxy in front of Ollama), resolved per request.
        auth = KeyHeaders(secrets, config.api_key) if config.api_key else NO_AUTH
        self._client = build_client(name, config, base_url, auth=auth)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._client.json("POST", path, headers={}, body=body)

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        data = await self._post("/api/chat", to_ollama(model, request, stream=False))
        return from_ollama(data, model)

    async def _lines(
        self, path: str, body: dict[str, Any], read_timeout: bool = True
    ) -> AsyncIterator[Any]:
        """NDJSON lines of a streamed POST; errors before and during the stream mapped."""
        lines = self._client.lines(path, headers={}, body=body, read_timeout=read_timeout)
        async with aclosing(lines):
            async for line in iter_ndjson(lines):
                yield line

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        state = _Stream(model)
        started = False
        async for line in self._lines("/api/chat", to_ollama(model, request, stream=True)):
            if not isinstance(line, dict):
                raise ProviderError(f"{self.name} sent an invalid stream line", kind="protocol")
            for chunk in state.chunks(line):
                if not started:
                    started = True
                    yield state.first()
                yield chunk
        if not state.done:
            raise ProviderError(
                f"{self.name} stream ended before the answer was complete",
                kind="connect",
                provider=self.name,
            )

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        body: dict[str, Any] = {"model": model, "input": inputs}
        if dimensions:
            body["dimensions"] = dimensions
        data = await self._post("/api/embed", body)
        try:
            vectors = [[float(x) for x in v] for v in data["embeddings"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"{self.name} returned an unexpected embed body") from exc
        return EmbeddingResult(vectors, int(data.get("prompt_eval_count") or 0))

    async def list_models(self) -> list[str]:
        data = await self._client.json("GET", "/api/tags", headers={})
        return [str(m.get("name") or m.get("model")) for m in data.get("models", [])]

    async def pull(self, model: str) -> AsyncIterator[dict[str, Any]]:
        """Pull ``model`` into Ollama, yielding its progress objects (``status``,
        ``digest``, ``total``, ``completed``). Downloads take long: no read timeout."""
        body = {"model": model, "stream": True}
        async for line in self._lines("/api/pull", body, read_timeout=False):
            if isinstance(line, dict) and line.get("error"):
                raise ProviderError(f"{self.name} pull failed: {line['error']}", kind="protocol")
            if isinstance(line, dict):
                yield line

    async def probe(self) -> str:
        """``GET /api/tags`` (with the key, when a proxy in front of Ollama needs one)."""
        return f"{len(await self.list_models())} models"

    async def aclose(self) -> None:
        await self._client.aclose()
