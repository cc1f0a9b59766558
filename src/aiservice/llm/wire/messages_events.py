"""Pure rendering of gateway chat chunks as Anthropic Messages API stream events, and of
those events as one message.

:class:`EventWriter` turns the ``chat.completion.chunk`` stream of any deployment into
Anthropic's event sequence: ``message_start``, ``ping``, per content block
``content_block_start`` / ``content_block_delta`` (``text_delta``, ``input_json_delta``)
/ ``content_block_stop``, then ``message_delta`` (``stop_reason``, usage) and
``message_stop``. Chunks from a deployment that speaks the Messages API carry the upstream
events themselves (:data:`~aiservice.providers.anthropic_native.NATIVE_EVENTS`); those are
replayed as they are, only ``message.model`` set to the public model name.

A non-stream request is answered with :func:`message_from_events` over the same events,
so both forms of one answer agree to the byte of text.

Stop reasons from a translated deployment: ``stop`` → ``end_turn`` (OpenAI does not say
whether a stop sequence ended the text), ``length`` → ``max_tokens``, ``tool_calls`` →
``tool_use``, ``content_filter`` → ``refusal``. Usage: ``input_tokens`` is the prompt
minus cached tokens, reported in ``message_delta`` (a chat stream only knows it at the
end); ``cache_read_input_tokens`` the cached part.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ...errors import UpstreamError
from ...providers.anthropic_native import NATIVE_EVENTS

__all__ = ["EventWriter", "message_from_events", "new_message_id", "sse_event"]

Event = dict[str, Any]

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def sse_event(event: Event) -> bytes:
    """One SSE frame: Anthropic's clients dispatch on the ``event:`` line."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    out = {
        "input_tokens": prompt - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


class EventWriter:
    """Chat chunks in, Messages API events out; :meth:`close` ends a complete stream."""

    def __init__(self, model: str, message_id: str | None = None) -> None:
        self.model = model
        self.id = message_id or new_message_id()
        self.native: bool | None = None  # decided by the first chunk
        self._index = -1
        self._open: str | None = None  # "text", or the tool call index as "tool:N"
        self._stop: str | None = None
        self._usage: dict[str, Any] = {}

    # -- chunks in ---------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self.native is None:
            self.native = NATIVE_EVENTS in chunk
            if not self.native:
                return [self._start(), {"type": "ping"}, *self._translate(chunk)]
        if self.native:
            return [self._public(event) for event in chunk.get(NATIVE_EVENTS) or ()]
        return self._translate(chunk)

    def close(self) -> list[Event]:
        """The closing events of a translated stream (a native one sent its own)."""
        if self.native:
            return []
        events = self._close_block()
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        events.append({"type": "message_delta", "delta": delta, "usage": _usage(self._usage)})
        events.append({"type": "message_stop"})
        return events

    # -- native ------------------------------------------------------------------------

    def _public(self, event: Event) -> Event:
        if event.get("type") == "message_start":
            message = {**(event.get("message") or {}), "model": self.model}
            return {**event, "message": message}
        return event

    # -- translated --------------------------------------------------------------------

    def _start(self) -> Event:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return {"type": "message_start", "message": message}

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[Event]:
        events = self._close_block()
        self._index += 1
        self._open = kind
        events.append({"type": "content_block_start", "index": self._index, "content_block": block})
        return events

    def _translate(self, chunk: dict[str, Any]) -> list[Event]:
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self._open != "text":
                    events += self._open_block("text", {"type": "text", "text": ""})
                text = {"type": "text_delta", "text": delta["content"]}
                events.append({"type": "content_block_delta", "index": self._index, "delta": text})
            for call in delta.get("tool_calls") or ():
                events += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._stop = _STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return events

    def _tool_delta(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        kind = f"tool:{call.get('index', 0)}"
        function = call.get("function") or {}
        if self._open != kind:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._open_block(kind, block)
        if function.get("arguments"):
            delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
            events.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        return events


# -- events -> message ------------------------------------------------------------------


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], partial: dict[int, str]) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif kind == "input_json_delta":
        partial[id(block)] = partial.get(id(block), "") + delta.get("partial_json", "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature", "")
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta.get("citation"))


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise UpstreamError(
            "the model's tool call arguments are not valid JSON", code="upstream_invalid_answer"
        ) from exc


def message_from_events(events: list[Event]) -> dict[str, Any]:
    """The message a complete event sequence streams (what the SDK's accumulator builds)."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = {**event["message"], "content": []}
            message["usage"] = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            _apply_delta(blocks[event["index"]], event.get("delta") or {}, partial)
        elif kind == "content_block_stop":
            block = blocks[event["index"]]
            if id(block) in partial:
                block["input"] = _arguments(partial.pop(id(block)))
        elif kind == "message_delta":
            message.update(event.get("delta") or {})
            usage = {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            message["usage"].update(usage)
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message
