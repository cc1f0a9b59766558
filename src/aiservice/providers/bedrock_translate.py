"""Pure translation between the OpenAI chat format and Bedrock's Converse API.

Request (keyword arguments of ``bedrock-runtime`` ``converse`` / ``converse_stream``):
system/developer messages → ``system``; user parts → ``text`` / ``image`` blocks (images
must be ``data:`` URLs: Converse takes bytes, and fetching arbitrary URLs server-side
would be an SSRF hole); assistant ``tool_calls`` → ``toolUse``; ``tool`` messages →
``toolResult`` in a user turn; sampling → ``inferenceConfig``; ``tools`` / ``tool_choice``
→ ``toolConfig``. JSON mode becomes a system instruction (Converse has no JSON switch).
``tool_choice: "none"`` has no Converse equivalent: tools are left out unless the history
already contains tool turns (Converse then requires ``toolConfig``).
Ignored: ``seed``, penalties, ``logprobs``, ``user``. ``n > 1`` is a 400.

Response and stream events map back to OpenAI completions and chunks; botocore errors map
to :class:`ProviderError` through :data:`ERROR_CODES`.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import InvalidRequestError
from . import wire
from .base import ChatChunk, ChatCompletion, ErrorKind, ProviderError
from .translate_common import (
    TurnBuilder,
    assistant_message,
    content_parts,
    image_url_of,
    json_instruction,
    max_output_tokens,
    parse_data_url,
    require_single_choice,
    split_messages,
    stop_sequences,
    stream_cut,
    tool_call,
    tool_result_text,
    usage_with_cache,
)

__all__ = [
    "ERROR_CODES",
    "FINISH_REASONS",
    "ConverseStream",
    "error_for_code",
    "from_converse_response",
    "to_converse_request",
]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

ERROR_CODES: dict[str, tuple[int, ErrorKind]] = {
    "ThrottlingException": (429, "http"),
    "TooManyRequestsException": (429, "http"),
    "ModelNotReadyException": (429, "http"),  # AWS: retry later, the model is loading
    "ServiceQuotaExceededException": (400, "http"),
    "ValidationException": (400, "http"),
    "ResourceNotFoundException": (404, "http"),
    "AccessDeniedException": (403, "auth"),
    "UnrecognizedClientException": (401, "auth"),
    "InvalidSignatureException": (403, "auth"),
    "ExpiredTokenException": (401, "auth"),
    "ModelErrorException": (502, "http"),
    "ModelStreamErrorException": (502, "http"),
    "InternalServerException": (500, "http"),
    "ServiceUnavailableException": (503, "http"),
    "ModelTimeoutException": (504, "timeout"),
}
"""Bedrock error code → (status, kind). Stream exceptions use the same names with a
lower-case first letter (``throttlingException``); :func:`error_for_code` accepts both."""

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def error_for_code(
    code: str, message: str, provider: str, status: int | None = None
) -> ProviderError:
    known = ERROR_CODES.get(code[:1].upper() + code[1:])
    mapped_status, kind = known if known else (status or 500, "http")
    if not known and mapped_status in (401, 403):
        kind = "auth"
    return ProviderError(
        f"{provider} returned {code}: {message}", kind=kind, status=mapped_status, provider=provider
    )


# -- request ------------------------------------------------------------------------------


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    data = parse_data_url(image_url_of(part))
    if data is None:
        raise InvalidRequestError(
            "bedrock needs images as data: URLs (base64); http(s) image URLs are not fetched",
            param="messages",
        )
    image_format = _IMAGE_FORMATS.get(data.media_type)
    if image_format is None:
        raise InvalidRequestError(
            f"bedrock does not accept images of type {data.media_type}", param="messages"
        )
    return {"image": {"format": image_format, "source": {"bytes": data.raw()}}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    return [
        {"text": part["text"]} if part["type"] == "text" else _image_block(part)
        for part in content_parts(content)
    ]


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"text": part["text"]}
        for part in content_parts(message.get("content"))
        if part["type"] == "text"
    ]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        use = {
            "toolUseId": call.get("id"),
            "name": function.get("name"),
            "input": wire.parse_arguments(function.get("arguments")),
        }
        blocks.append({"toolUse": use})
    return blocks


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise InvalidRequestError("tool messages need a tool_call_id", param="messages")
    text = tool_result_text(message) or "(empty)"  # Converse rejects blank text blocks
    return {"toolResult": {"toolUseId": message["tool_call_id"], "content": [{"text": text}]}}


_TURNS: dict[str, TurnBuilder] = {
    "user": ("user", lambda message: _user_blocks(message.get("content"))),
    "assistant": ("assistant", _assistant_blocks),
    "tool": ("user", lambda message: [_tool_result(message)]),
}


def _tool_config(request: dict[str, Any], has_tool_turns: bool) -> dict[str, Any] | None:
    functions = [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]
    choice = request.get("tool_choice")
    if not functions or (choice == "none" and not has_tool_turns):
        return None
    tools = [
        {
            "toolSpec": {
                "name": f["name"],
                "description": f.get("description") or f["name"],
                "inputSchema": {"json": f.get("parameters") or {"type": "object"}},
            }
        }
        for f in functions
    ]
    config: dict[str, Any] = {"tools": tools}
    if isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _inference_config(request: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if tokens := max_output_tokens(request):
        config["maxTokens"] = tokens
    if request.get("temperature") is not None:
        config["temperature"] = request["temperature"]
    if request.get("top_p") is not None:
        config["topP"] = request["top_p"]
    if stops := stop_sequences(request):
        config["stopSequences"] = stops
    return config


def to_converse_request(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``converse`` / ``converse_stream``."""
    require_single_choice(request, "bedrock")
    system, turns = split_messages(request.get("messages") or [], _TURNS)
    if instruction := json_instruction(request.get("response_format")):
        system.append(instruction)
    kwargs: dict[str, Any] = {"modelId": model, "messages": turns}
    if system:
        kwargs["system"] = [{"text": text} for text in system]
    if inference := _inference_config(request):
        kwargs["inferenceConfig"] = inference
    has_tool_turns = any(
        "toolUse" in block or "toolResult" in block for t in turns for block in t["content"]
    )
    if tool_config := _tool_config(request, has_tool_turns):
        kwargs["toolConfig"] = tool_config
    return kwargs


# -- response -----------------------------------------------------------------------------


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = usage.get("cacheReadInputTokens") or 0
    prompt = (usage.get("inputTokens") or 0) + cached + (usage.get("cacheWriteInputTokens") or 0)
    return usage_with_cache(prompt, usage.get("outputTokens") or 0, cached)


def _tool_call(use: dict[str, Any]) -> dict[str, Any]:
    return tool_call(use["toolUseId"], use["name"], use.get("input"))


def from_converse_response(response: dict[str, Any], model: str) -> ChatCompletion:
    """A ``chat.completion`` for a ``converse`` response."""
    blocks = ((response.get("output") or {}).get("message") or {}).get("content") or []
    text = "".join(b["text"] for b in blocks if "text" in b)
    calls = [_tool_call(b["toolUse"]) for b in blocks if "toolUse" in b]
    message = assistant_message(text, calls)
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
    return wire.completion(
        model,
        message,
        FINISH_REASONS.get(response.get("stopReason") or "end_turn", "stop"),
        _usage(response.get("usage") or {}),
        id_=f"chatcmpl-{request_id}" if request_id else None,
    )


class ConverseStream:
    """Turns ConverseStream events (one dict per event) into OpenAI chunks.

    ``finish()`` returns the usage chunk, or raises if the stream ended before
    ``messageStop`` (a cut stream must not look complete).
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.id = wire.new_id()
        self.model = model
        self.created = int(time.time())
        self.stopped = False
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # contentBlockIndex -> tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        return wire.chunk(self.id, self.model, self.created, delta, finish)

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        chunks: list[ChatChunk] = []
        for name, body in event.items():
            handler = getattr(self, f"_on_{name}", None)
            if handler is not None:
                chunks.extend(handler(body))
            elif name.endswith("Exception"):
                message = (body or {}).get("message") or name
                raise error_for_code(name, message, self.provider)
        return chunks

    def finish(self) -> list[ChatChunk]:
        if not self.stopped:
            raise stream_cut(self.provider, "messageStop")
        return [wire.usage_chunk(self.id, self.model, self.created, _usage(self._usage))]

    def _on_messageStart(self, body: dict[str, Any]) -> list[ChatChunk]:  # noqa: N802
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_contentBlockStart(self, body: dict[str, Any]) -> list[ChatChunk]:  # noqa: N802
        use = (body.get("start") or {}).get("toolUse")
        if not use:
            return []
        index = self._tool_index[body.get("contentBlockIndex", 0)] = len(self._tool_index)
        call = {
            "index": index,
            "id": use["toolUseId"],
            "type": "function",
            "function": {"name": use["name"], "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _on_contentBlockDelta(self, body: dict[str, Any]) -> list[ChatChunk]:  # noqa: N802
        delta = body.get("delta") or {}
        if delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        partial = (delta.get("toolUse") or {}).get("input")
        if partial:
            index = self._tool_index[body.get("contentBlockIndex", 0)]
            return [
                self._chunk({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})
            ]
        return []  # reasoning / citation deltas have no OpenAI equivalent

    def _on_messageStop(self, body: dict[str, Any]) -> list[ChatChunk]:  # noqa: N802
        self.stopped = True
        reason = FINISH_REASONS.get(body.get("stopReason") or "end_turn", "stop")
        return [self._chunk({}, reason)]

    def _on_metadata(self, body: dict[str, Any]) -> list[ChatChunk]:
        self._usage = body.get("usage") or self._usage
        return []
