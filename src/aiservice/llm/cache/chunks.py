"""Pure conversions between a ``chat.completion`` and its ``chat.completion.chunk`` list.

Cache entries are always the ordered chunk list, so a streamed entry can answer a
non-stream request (:func:`chunks_to_completion`) and a non-stream entry can be replayed
as a stream (:func:`completion_to_chunks`). A streamed entry replays with the exact chunk
boundaries it was recorded with.
"""

from __future__ import annotations

from typing import Any

__all__ = ["chunks_to_completion", "completion_to_chunks"]

_CARRIED = ("id", "created", "model", "system_fingerprint", "service_tier")


def _header(source: dict[str, Any], obj: str) -> dict[str, Any]:
    head: dict[str, Any] = {"object": obj}
    for name in _CARRIED:
        if source.get(name) is not None:
            head[name] = source[name]
    return head


def _delta(message: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": message.get("role", "assistant")}
    for name in ("content", "refusal", "reasoning_content"):
        if message.get(name) is not None:
            delta[name] = message[name]
    calls = message.get("tool_calls")
    if calls:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
    return delta


def completion_to_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """One chunk per choice (whole message as the delta), then a usage chunk."""
    chunks = []
    for choice in completion.get("choices", []):
        chunk = _header(completion, "chat.completion.chunk")
        entry: dict[str, Any] = {
            "index": choice.get("index", 0),
            "delta": _delta(choice.get("message") or {}),
            "finish_reason": choice.get("finish_reason"),
        }
        if choice.get("logprobs") is not None:
            entry["logprobs"] = choice["logprobs"]
        chunk["choices"] = [entry]
        chunks.append(chunk)
    if completion.get("usage") is not None:
        chunks.append(
            {
                **_header(completion, "chat.completion.chunk"),
                "choices": [],
                "usage": completion["usage"],
            }
        )
    return chunks


class _Choice:
    """Accumulates the deltas of one choice index."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.text: dict[str, list[str]] = {}
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def add(self, entry: dict[str, Any]) -> None:
        delta = entry.get("delta") or {}
        self.role = delta.get("role") or self.role
        for name in ("content", "refusal", "reasoning_content"):
            if delta.get(name) is not None:
                self.text.setdefault(name, []).append(delta[name])
        for call in delta.get("tool_calls") or []:
            self._add_call(call)
        if entry.get("finish_reason") is not None:
            self.finish_reason = entry["finish_reason"]
        if entry.get("logprobs"):
            self.logprobs = self.logprobs or {}
            for name, items in entry["logprobs"].items():
                if items is not None:
                    self.logprobs.setdefault(name, []).extend(items)

    def _add_call(self, call: dict[str, Any]) -> None:
        slot = self.calls.setdefault(call.get("index", len(self.calls)), {})
        for name in ("id", "type"):
            if call.get(name):
                slot[name] = call[name]
        function = call.get("function") or {}
        target = slot.setdefault("function", {})
        for name in ("name", "arguments"):
            if function.get(name) is not None:
                target[name] = target.get(name, "") + function[name]

    def result(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": None}
        for name, parts in self.text.items():
            message[name] = "".join(parts)
        if self.calls:
            message["tool_calls"] = [
                {"type": "function", **self.calls[i]} for i in sorted(self.calls)
            ]
        return {
            "index": self.index,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


def chunks_to_completion(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge a chunk sequence into the ``chat.completion`` it streams."""
    if not chunks:
        raise ValueError("an empty chunk list is not a completion")
    completion = _header(chunks[0], "chat.completion")
    choices: dict[int, _Choice] = {}
    usage = None
    for chunk in chunks:
        for entry in chunk.get("choices") or []:
            index = entry.get("index", 0)
            choices.setdefault(index, _Choice(index)).add(entry)
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
    completion["choices"] = [choices[i].result() for i in sorted(choices)]
    if usage is not None:
        completion["usage"] = usage
    return completion
