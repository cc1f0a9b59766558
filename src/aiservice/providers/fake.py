"""``fake``: a deterministic, offline provider for demos, tests and local development.

It never touches the network and always gives the same answer to the same request:

* **Reply**: the text of the last ``user`` message, echoed back unchanged (text parts of a
  multi-part message joined by newlines; an image part adds nothing). An empty message gets
  ``"(empty message)"``. If the last message is a ``tool`` result, the reply is
  ``"tool result: <content>"``.
* **Tools**: when ``tools`` are given, ``tool_choice`` is not ``"none"`` and the last message
  is from the user, it returns one tool call (``finish_reason: "tool_calls"``) to the tool
  named by ``tool_choice`` or else the first tool. The arguments are built from the tool's
  JSON schema: every ``required`` property (all properties if none are required) gets a
  value of its type — strings get the last user text, numbers/integers its word count,
  booleans ``true``, enums their first value, arrays ``[]``, objects ``{}``. Work stays
  bounded whatever the schema: once the built JSON reaches 64 KiB further strings are
  empty, and objects nested deeper than 16 levels are ``{}``.
* **JSON mode**: ``response_format: json_object`` replies ``{"reply": "<echo>"}``;
  ``json_schema`` replies an object built from the schema by the same rule as tool arguments.
* **Limits**: ``max_tokens`` / ``max_completion_tokens`` cut the reply to that many words
  (``finish_reason: "length"``); ``stop`` cuts it before the first stop sequence; ``n``
  returns that many identical choices.
* **Usage**: one token per whitespace-separated word (prompt = all message texts, at least
  one per message; completion = the reply, or the tool call's arguments).
* **Streaming**: a role chunk, one chunk per word (concatenating the deltas gives the
  reply; beyond 1024 words, consecutive words share a chunk so a stream never has more
  than 1024 content chunks), a tool call as a name chunk then its arguments in two
  pieces, a final chunk with ``finish_reason``, then the usage chunk.
* **Embeddings**: unit vectors derived from SHA-256 (SHAKE-256) of each input;
  ``dimensions`` is honoured (default 256); equal inputs give equal vectors. Large
  requests are computed in a worker thread so the event loop stays responsive.

The gateway bounds what may be asked (``limits.requests``: inputs, dimensions, ``n``,
messages, tools), so the answer is at most ``n`` × the request's text (or 64 KiB of
schema-built JSON).
* **Models**: answers to any model name; lists ``["fake"]``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NamedTuple

from ..cpu import run_cpu
from . import wire
from .base import ChatChunk, ChatCompletion, ChatRequest, EmbeddingResult

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = ["FakeProvider", "DEFAULT_DIMENSIONS"]

DEFAULT_DIMENSIONS = 256
_CREATED = 1_700_000_000  # fixed so responses are byte-for-byte reproducible


def _words(text: str) -> int:
    return len(text.split())


MAX_BUILT_CHARS = 64 * 1024
"""Text budget of a schema-built object (tool arguments, ``json_schema`` replies)."""
MAX_BUILT_DEPTH = 16
MAX_STREAM_PIECES = 1024
PARALLEL_VALUES = 65_536
"""Embedding floats above which the vectors are computed on the CPU thread."""
PARALLEL_TEXT = 64 * 1024
"""Prompt characters above which a chat answer is computed on the CPU thread."""


class _Builder:
    """Builds values fitting a JSON schema, within a text budget and a nesting depth: a
    schema of thousands of string properties must not multiply the user text by them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.left = MAX_BUILT_CHARS

    def _string(self) -> str:
        if len(self.text) > self.left:
            self.left = 0
            return ""
        self.left -= len(self.text)
        return self.text

    def value(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self._string()
        if schema.get("enum") and isinstance(schema["enum"], list):
            return schema["enum"][0]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        builders: dict[str, Any] = {
            "string": self._string,
            "integer": lambda: _words(self.text),
            "number": lambda: float(_words(self.text)),
            "boolean": lambda: True,
            "array": lambda: [],
            "object": lambda: self.object(schema, depth + 1),
            "null": lambda: None,
        }
        return builders.get(str(kind), self._string)()

    def object(self, schema: Any, depth: int = 0) -> dict[str, Any]:
        """An object that fits a simple JSON schema (see the module docstring for the rule)."""
        if not isinstance(schema, dict) or depth > MAX_BUILT_DEPTH:
            return {}
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        names = schema.get("required") or list(properties)
        if not isinstance(names, list):
            return {}
        return {
            str(name): self.value(properties.get(name) or {}, depth)
            for name in names
            if isinstance(name, str)
        }


def _object_for(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return _Builder(text).object(schema)


def _last(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return messages[-1] if messages else {}


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return wire.message_text(message)
    return ""


def _chosen_tool(request: ChatRequest) -> dict[str, Any] | None:
    tools = request.get("tools") or []
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none" or _last(request.get("messages", [])).get("role") != "user":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        for tool in tools:
            if tool.get("function", {}).get("name") == wanted:
                return dict(tool["function"])
    return dict(tools[0].get("function") or {})


def _text_reply(request: ChatRequest) -> str:
    messages = request.get("messages", [])
    last = _last(messages)
    if last.get("role") == "tool":
        return f"tool result: {wire.message_text(last)}"
    text = _last_user_text(messages) or "(empty message)"
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_object":
        return json.dumps({"reply": text})
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {}
        return json.dumps(_object_for(schema, text))
    return text


def _apply_limits(text: str, request: ChatRequest) -> tuple[str, str]:
    stops = request.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if limit and _words(text) > limit:
        return " ".join(text.split()[:limit]), "length"
    return text, "stop"


def _prompt_tokens(request: ChatRequest) -> int:
    return sum(max(1, _words(wire.message_text(m))) for m in request.get("messages", []))


def _tool_call(tool: dict[str, Any], text: str) -> dict[str, Any]:
    arguments = json.dumps(_object_for(tool.get("parameters") or {}, text))
    seed = f"{tool.get('name')}\0{text}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(seed).hexdigest()[:24]
    return {
        "id": f"call_{digest}",
        "type": "function",
        "function": {"name": tool.get("name", ""), "arguments": arguments},
    }


def _answer(request: ChatRequest) -> tuple[dict[str, Any], str, int]:
    """(assistant message, finish_reason, completion tokens) for a request."""
    tool = _chosen_tool(request)
    if tool is not None:
        call = _tool_call(tool, _last_user_text(request.get("messages", [])))
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return message, "tool_calls", max(1, _words(call["function"]["arguments"]))
    text, finish = _apply_limits(_text_reply(request), request)
    return {"role": "assistant", "content": text}, finish, _words(text)


def _request_id(model: str, request: ChatRequest) -> str:
    blob = json.dumps([model, request], sort_keys=True, default=str)
    return "chatcmpl-fake-" + hashlib.sha256(blob.encode()).hexdigest()[:20]


def _split_words(text: str) -> list[str]:
    """Pieces whose concatenation is ``text``: each word keeps its surrounding whitespace;
    at most :data:`MAX_STREAM_PIECES` pieces (neighbouring words joined beyond that)."""
    pieces = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    if len(pieces) <= MAX_STREAM_PIECES:
        return pieces
    per = -(-len(pieces) // MAX_STREAM_PIECES)
    return ["".join(pieces[i : i + per]) for i in range(0, len(pieces), per)]


def embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text``."""
    # surrogatepass: a lone surrogate still hashes (deterministically) instead of raising.
    raw = hashlib.shake_256(text.encode("utf-8", "surrogatepass")).digest(2 * dimensions)
    values = [(v / 32767.5) - 1.0 for v in struct.unpack(f">{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _embeddings(inputs: list[str], dimensions: int) -> list[list[float]]:
    return [embedding(text, dimensions) for text in inputs]


class _Answer(NamedTuple):
    message: dict[str, Any]
    finish: str
    completion_tokens: int
    prompt_tokens: int
    id: str
    pieces: list[str]


def _prepare(model: str, request: ChatRequest) -> _Answer:
    message, finish, completion_tokens = _answer(request)
    return _Answer(
        message,
        finish,
        completion_tokens,
        _prompt_tokens(request),
        _request_id(model, request),
        _split_words(message.get("content") or ""),
    )


async def _prepared(model: str, request: ChatRequest) -> _Answer:
    """The answer, computed on the CPU thread for a big request (hashing, splitting and
    counting the words of a near-megabyte prompt takes the event loop tens of ms)."""
    size = sum(len(wire.message_text(m)) for m in request.get("messages") or [])
    if size > PARALLEL_TEXT:
        return await run_cpu(_prepare, model, request)
    return _prepare(model, request)


class FakeProvider:
    """Deterministic offline provider (see the module docstring for every rule)."""

    def __init__(self, name: str, config: ProviderSettings, secrets: SecretResolver) -> None:
        self.name = name
        self.config = config

    async def chat(self, model: str, request: ChatRequest) -> ChatCompletion:
        answer = await _prepared(model, request)
        n = int(request.get("n") or 1)
        choices = [
            {
                "index": i,
                "message": answer.message,
                "finish_reason": answer.finish,
                "logprobs": None,
            }
            for i in range(n)
        ]
        return wire.completion(
            model,
            answer.message,
            answer.finish,
            wire.usage(answer.prompt_tokens, answer.completion_tokens * n),
            id_=answer.id,
            created=_CREATED,
            choices=choices,
        )

    async def stream_chat(self, model: str, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        answer = await _prepared(model, request)
        message, id_ = answer.message, answer.id
        yield wire.chunk(id_, model, _CREATED, {"role": "assistant", "content": ""})
        for call in message.get("tool_calls") or []:
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield wire.chunk(id_, model, _CREATED, {"tool_calls": [{"index": 0, **head}]})
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                yield wire.chunk(id_, model, _CREATED, delta)
        for piece in answer.pieces:
            yield wire.chunk(id_, model, _CREATED, {"content": piece})
        yield wire.chunk(id_, model, _CREATED, {}, answer.finish)
        usage = wire.usage(answer.prompt_tokens, answer.completion_tokens)
        yield wire.usage_chunk(id_, model, _CREATED, usage)

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingResult:
        size = dimensions or DEFAULT_DIMENSIONS
        if len(inputs) * size > PARALLEL_VALUES:
            # A Python loop per vector on the CPU thread (aiservice.cpu): the event loop
            # (health probes, other requests) keeps running meanwhile.
            vectors = await run_cpu(_embeddings, inputs, size)
        else:
            vectors = _embeddings(inputs, size)
        return EmbeddingResult(vectors, sum(max(1, _words(t)) for t in inputs))

    async def list_models(self) -> list[str]:
        return ["fake"]

    async def probe(self) -> str:
        return "built-in, offline"

    async def aclose(self) -> None:
        return None
