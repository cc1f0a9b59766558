"""Pure translation between the OpenAI chat format and Gemini's ``generateContent``.

The same wire format serves Google AI (``generativelanguage.googleapis.com``) and Vertex
AI. Request: system/developer messages → ``systemInstruction``; user/assistant →
``contents`` with roles ``user`` / ``model``; images → ``inlineData`` (``data:`` URLs) or
``fileData`` (other URLs); assistant ``tool_calls`` → ``functionCall`` parts; ``tool``
messages → ``functionResponse`` parts (Gemini keys them by function name, recovered from
the earlier assistant turn); sampling options → ``generationConfig`` (``n`` →
``candidateCount``; JSON mode → ``responseMimeType`` + ``responseSchema``).

JSON Schemas (tool parameters, ``json_schema``) are reduced to the OpenAPI subset Gemini's
``Schema`` accepts: unknown keywords such as ``additionalProperties`` or ``$schema`` are
dropped and ``"type": [T, "null"]`` becomes ``type: T, nullable: true``.
"""

from __future__ import annotations

import json
import mimetypes
import time
import uuid
from typing import Any

from ..errors import InvalidRequestError
from . import wire
from .base import ChatChunk, ChatCompletion, ProviderError
from .translate_common import (
    TurnBuilder,
    assistant_message,
    content_parts,
    image_url_of,
    max_output_tokens,
    parse_data_url,
    split_messages,
    stop_sequences,
    stream_cut,
    tool_call,
    tool_call_names,
    tool_result_text,
    usage_with_cache,
)

__all__ = [
    "FINISH_REASONS",
    "GeminiStream",
    "from_generate_response",
    "gemini_schema",
    "to_generate_request",
]

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
"""Gemini ``finishReason`` → OpenAI; anything else (OTHER, LANGUAGE, ...) → ``stop``."""

_SCHEMA_KEYS = {
    "type", "format", "title", "description", "nullable", "enum", "items", "properties",
    "required", "minItems", "maxItems", "minProperties", "maxProperties", "minLength",
    "maxLength", "pattern", "minimum", "maximum", "anyOf", "propertyOrdering", "default",
    "example",
}  # fmt: skip

_GENERATION_CONFIG = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)

_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


# -- request ------------------------------------------------------------------------------


def gemini_schema(schema: Any) -> Any:
    """A JSON Schema reduced to the subset Gemini's ``Schema`` object accepts."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out["type"] = types[0] if types else "string"
            if "null" in value:
                out["nullable"] = True
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: gemini_schema(sub) for name, sub in value.items()}
        elif key in ("items",):
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def _image_part(part: dict[str, Any]) -> dict[str, Any]:
    url = image_url_of(part)
    data = parse_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": data.media_type, "data": data.data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _user_parts(content: Any) -> list[dict[str, Any]]:
    return [
        {"text": part["text"]} if part["type"] == "text" else _image_part(part)
        for part in content_parts(content)
    ]


def _model_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [
        {"text": part["text"]}
        for part in content_parts(message.get("content"))
        if part["type"] == "text"
    ]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        args = wire.parse_arguments(function.get("arguments"))
        parts.append({"functionCall": {"name": function.get("name"), "args": args}})
    return parts


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = names.get(message.get("tool_call_id") or "")
    if name is None:
        raise InvalidRequestError(
            "tool message refers to a tool_call_id that no assistant message issued",
            param="messages",
        )
    text = tool_result_text(message)
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    # Gemini wants an object; Google's SDKs put a non-object result under "output".
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def _contents(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    names = tool_call_names(messages)
    turns: dict[str, TurnBuilder] = {
        "user": ("user", lambda message: _user_parts(message.get("content"))),
        "assistant": ("model", _model_parts),
        # parallel function responses share one user turn
        "tool": ("user", lambda message: [_function_response(message, names)]),
    }
    return split_messages(messages, turns, key="parts")


def _tools(request: dict[str, Any]) -> dict[str, Any]:
    tools = [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]
    if not tools:
        return {}
    declarations = []
    for function in tools:
        declaration = {"name": function["name"], "description": function.get("description", "")}
        if function.get("parameters", {}).get("properties"):
            declaration["parameters"] = gemini_schema(function["parameters"])
        declarations.append(declaration)
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    else:
        config = {"mode": _MODES.get(choice or "auto", "AUTO")}
    return {
        "tools": [{"functionDeclarations": declarations}],
        "toolConfig": {"functionCallingConfig": config},
    }


def _generation_config(request: dict[str, Any]) -> dict[str, Any]:
    config = {
        theirs: request[ours]
        for ours, theirs in _GENERATION_CONFIG
        if request.get(ours) is not None  # 0 is meaningful (greedy decoding, seed 0)
    }
    if tokens := max_output_tokens(request):
        config["maxOutputTokens"] = tokens
    if stops := stop_sequences(request):
        config["stopSequences"] = stops
    if (request.get("n") or 1) > 1:
        config["candidateCount"] = request["n"]
    response_format = request.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseSchema"] = gemini_schema(schema)
    return config


def to_generate_request(request: dict[str, Any]) -> dict[str, Any]:
    """The body of ``models/{model}:generateContent`` for an OpenAI chat request."""
    system, contents = _contents(request.get("messages") or [])
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    body.update(_tools(request))
    if config := _generation_config(request):
        body["generationConfig"] = config
    return body


# -- response -----------------------------------------------------------------------------


def _usage(metadata: dict[str, Any]) -> dict[str, Any]:
    # Thinking tokens are billed as output; OpenAI counts reasoning inside completion_tokens.
    output = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    prompt = metadata.get("promptTokenCount") or 0
    return usage_with_cache(prompt, output, metadata.get("cachedContentTokenCount") or 0)


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    id_ = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    return tool_call(id_, call.get("name", ""), call.get("args"))


def _visible_parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    parts = (candidate.get("content") or {}).get("parts") or []
    return [p for p in parts if not p.get("thought")]  # thought summaries are not the answer


def _finish(candidate: dict[str, Any], has_calls: bool) -> str:
    reason = FINISH_REASONS.get(candidate.get("finishReason") or "STOP", "stop")
    return "tool_calls" if has_calls and reason == "stop" else reason


def _blocked(body: dict[str, Any]) -> bool:
    return bool((body.get("promptFeedback") or {}).get("blockReason"))


def from_generate_response(body: dict[str, Any], model: str) -> ChatCompletion:
    """A ``chat.completion`` for a ``generateContent`` response body."""
    choices = []
    for position, candidate in enumerate(body.get("candidates") or []):
        parts = _visible_parts(candidate)
        text = "".join(p.get("text", "") for p in parts)
        calls = [_tool_call(p["functionCall"]) for p in parts if "functionCall" in p]
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": assistant_message(text, calls),
                "finish_reason": _finish(candidate, bool(calls)),
                "logprobs": None,
            }
        )
    if not choices:  # the prompt itself was blocked: no candidates at all
        message = {"role": "assistant", "content": ""}
        finish = "content_filter" if _blocked(body) else "stop"
        choices = [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]
    return wire.completion(
        body.get("modelVersion") or model,
        {},
        "stop",
        _usage(body.get("usageMetadata") or {}),
        id_=body.get("responseId"),
        choices=choices,
    )


# -- stream -------------------------------------------------------------------------------


class GeminiStream:
    """Turns ``streamGenerateContent?alt=sse`` responses into OpenAI chunks.

    Each SSE event is a partial ``GenerateContentResponse``. Function calls arrive whole,
    so each becomes one tool-call delta with its full arguments. ``finish()`` returns the
    usage chunk, or raises if no candidate finished (a cut stream).
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.id = wire.new_id()
        self.model = model
        self.created = int(time.time())
        self._usage: dict[str, Any] = {}
        self._started: set[int] = set()
        self._tools: dict[int, int] = {}  # candidate index -> tool calls so far
        self._finished: set[int] = set()
        self._blocked = False

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        return wire.chunk(self.id, self.model, self.created, delta, finish, index)

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        if "error" in event:
            raise _stream_error(event["error"], self.provider)
        self.id = event.get("responseId") or self.id
        self.model = event.get("modelVersion") or self.model
        self._usage = event.get("usageMetadata") or self._usage
        self._blocked = self._blocked or _blocked(event)
        chunks: list[ChatChunk] = []
        for position, candidate in enumerate(event.get("candidates") or []):
            chunks.extend(self._candidate(candidate.get("index", position), candidate))
        return chunks

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[ChatChunk]:
        chunks = []
        if index not in self._started:
            self._started.add(index)
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        for part in _visible_parts(candidate):
            if part.get("text"):
                chunks.append(self._chunk(index, {"content": part["text"]}))
            elif "functionCall" in part:
                position = self._tools.get(index, 0)
                self._tools[index] = position + 1
                call = {"index": position, **_tool_call(part["functionCall"])}
                chunks.append(self._chunk(index, {"tool_calls": [call]}))
        if candidate.get("finishReason"):
            self._finished.add(index)
            finish = _finish(candidate, self._tools.get(index, 0) > 0)
            chunks.append(self._chunk(index, {}, finish))
        return chunks

    def finish(self) -> list[ChatChunk]:
        chunks: list[ChatChunk] = []
        if not self._finished:
            if not self._blocked:
                raise stream_cut(self.provider, "a finishReason")
            chunks.append(self._chunk(0, {}, "content_filter"))
        usage = wire.usage_chunk(self.id, self.model, self.created, _usage(self._usage))
        return [*chunks, usage]


_STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _stream_error(error: Any, provider: str) -> ProviderError:
    error = error if isinstance(error, dict) else {"message": str(error)}
    status = error.get("code") or _STATUS_CODES.get(error.get("status", ""), 500)
    return ProviderError(
        f"{provider} stream error ({error.get('status', status)}): {error.get('message', '')}",
        kind="auth" if status in (401, 403) else "http",
        status=int(status),
        provider=provider,
    )
