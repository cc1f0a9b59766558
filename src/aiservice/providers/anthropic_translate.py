"""Pure translation between the OpenAI chat format and Anthropic's Messages API.

Request: system/developer messages become the top-level ``system`` blocks; user parts
become ``text`` / ``image`` blocks (``data:`` URLs → ``base64`` sources, http(s) URLs →
``url`` sources); assistant ``tool_calls`` become ``tool_use`` blocks and ``tool``
messages ``tool_result`` blocks in a user turn; consecutive same-role turns are merged
(Anthropic requires alternation). ``max_tokens`` is required upstream: absent, it defaults
to :data:`DEFAULT_MAX_TOKENS`. JSON mode has no native switch in the Messages API, so
``response_format`` becomes an instruction appended to the system prompt (this keeps
user tools and streaming unchanged; the reply is not schema-validated).

``temperature`` and ``top_p`` pass through unchanged (Anthropic accepts temperature 0–1
and rejects more with a 400, which the client sees). Ignored because Anthropic has no
equivalent: ``seed``, ``presence_penalty``, ``frequency_penalty``, ``logit_bias``,
``logprobs``. ``n > 1`` is a 400.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import InvalidRequestError
from . import wire
from .base import ChatChunk, ChatCompletion, ProviderError
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
    "DEFAULT_MAX_TOKENS",
    "ERROR_STATUS",
    "FINISH_REASONS",
    "AnthropicStream",
    "from_messages_response",
    "to_messages_request",
]

DEFAULT_MAX_TOKENS = 4096
"""Sent when the client gives no limit: the maximum output of the smallest Claude 3 model
(Haiku), so it is valid for every current Claude model."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error ``type`` → HTTP status, for errors that arrive inside a stream."""

_TOOL_CHOICE = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


# -- request ------------------------------------------------------------------------------


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    url = image_url_of(part)
    data = parse_data_url(url)
    if data is not None:
        source = {"type": "base64", "media_type": data.media_type, "data": data.data}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": part["text"]} if part["type"] == "text" else _image_block(part)
        for part in content_parts(content)
    ]


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": part["text"]}
        for part in content_parts(message.get("content"))
        if part["type"] == "text"
    ]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": wire.parse_arguments(function.get("arguments")),
            }
        )
    return blocks


def _tool_result_block(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("tool_call_id"):
        raise InvalidRequestError("tool messages need a tool_call_id", param="messages")
    return {
        "type": "tool_result",
        "tool_use_id": message["tool_call_id"],
        "content": tool_result_text(message),
    }


_TURNS: dict[str, TurnBuilder] = {
    "user": ("user", lambda message: _user_blocks(message.get("content"))),
    "assistant": ("assistant", _assistant_blocks),
    "tool": ("user", lambda message: [_tool_result_block(message)]),
}


def _tools(request: dict[str, Any]) -> dict[str, Any]:
    tools = request.get("tools")
    if not tools:
        return {}
    out: dict[str, Any] = {
        "tools": [
            {
                "name": tool["function"]["name"],
                "description": tool["function"].get("description", ""),
                "input_schema": tool["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for tool in tools
            if tool.get("type", "function") == "function"
        ]
    }
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        tool_choice: dict[str, Any] = {"type": "tool", "name": choice["function"]["name"]}
    else:
        tool_choice = dict(_TOOL_CHOICE.get(choice or "auto", {"type": "auto"}))
    if request.get("parallel_tool_calls") is False and tool_choice["type"] != "none":
        tool_choice["disable_parallel_tool_use"] = True
    out["tool_choice"] = tool_choice
    return out


def to_messages_request(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/messages`` for an OpenAI chat request."""
    require_single_choice(request, "anthropic")
    system, turns = split_messages(request.get("messages") or [], _TURNS)
    instruction = json_instruction(request.get("response_format"))
    if instruction:
        system.append(instruction)
    body: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": max_output_tokens(request) or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = [{"type": "text", "text": text} for text in system]
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        if request.get(ours) is not None:
            body[theirs] = request[ours]
    if stops := stop_sequences(request):
        body["stop_sequences"] = stops
    if request.get("user"):
        body["metadata"] = {"user_id": str(request["user"])}
    body.update(_tools(request))
    return body


# -- response -----------------------------------------------------------------------------


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    cached = usage.get("cache_read_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + cached
    prompt += usage.get("cache_creation_input_tokens") or 0
    return usage_with_cache(prompt, usage.get("output_tokens") or 0, cached)


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return tool_call(block["id"], block["name"], block.get("input"))


def from_messages_response(body: dict[str, Any]) -> ChatCompletion:
    """A ``chat.completion`` for a Messages API response body."""
    blocks = body.get("content") or []
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [_tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    message = assistant_message(text, calls)
    finish = FINISH_REASONS.get(body.get("stop_reason") or "end_turn", "stop")
    return wire.completion(
        body.get("model", ""),
        message,
        finish,
        _usage(body.get("usage") or {}),
        id_=body.get("id"),
    )


# -- stream -------------------------------------------------------------------------------


class AnthropicStream:
    """Turns the Messages API stream events into OpenAI chunks, one event at a time.

    ``feed(event)`` returns the chunks for one decoded SSE ``data`` object; an ``error``
    event raises :class:`ProviderError`. ``finish()`` raises if the stream ended before
    ``message_stop`` (a cut connection must not look like a complete answer).
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.id = wire.new_id()
        self.model = model
        self.created = int(time.time())
        self.done = False
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
        return wire.chunk(self.id, self.model, self.created, delta, finish)

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        handler = getattr(self, f"_on_{event.get('type')}", None)
        return handler(event) if handler is not None else []  # ping and future events

    def finish(self) -> None:
        if not self.done:
            raise stream_cut(self.provider, "message_stop")

    def _on_message_start(self, event: dict[str, Any]) -> list[ChatChunk]:
        message = event.get("message") or {}
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self._usage.update(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, event: dict[str, Any]) -> list[ChatChunk]:
        block = event.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self._tool_index[event["index"]] = len(self._tool_index)
            call = {
                "index": index,
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _on_content_block_delta(self, event: dict[str, Any]) -> list[ChatChunk]:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            call = {
                "index": self._tool_index[event["index"]],
                "function": {"arguments": delta["partial_json"]},
            }
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking / signature / citation deltas have no OpenAI equivalent

    def _on_message_delta(self, event: dict[str, Any]) -> list[ChatChunk]:
        # message_delta usage is cumulative: it replaces what message_start reported.
        self._usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        reason = (event.get("delta") or {}).get("stop_reason")
        if reason is None:
            return []
        return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]

    def _on_message_stop(self, event: dict[str, Any]) -> list[ChatChunk]:
        self.done = True
        return [wire.usage_chunk(self.id, self.model, self.created, _usage(self._usage))]

    def _on_error(self, event: dict[str, Any]) -> list[ChatChunk]:
        error = event.get("error") or {}
        kind = error.get("type", "api_error")
        status = ERROR_STATUS.get(kind, 500)
        message = error.get("message") or kind
        raise ProviderError(
            f"{self.provider} stream error ({kind}): {message}",
            kind="auth" if status in (401, 403) else "http",
            status=status,
            provider=self.provider,
        )
