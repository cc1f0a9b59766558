"""A ``chat.completion`` as a Responses API ``response`` object, as pure functions.

Output items are a ``message`` (one ``output_text`` part, or a ``refusal``) and one
``function_call`` per tool call; ``finish_reason`` ``length`` / ``content_filter`` make the
response ``incomplete``. Ids come from the ``new_id`` callable the caller passes, so a
cached completion still answers with fresh ids and tests can pin them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...providers.base import ChatCompletion

__all__ = [
    "Item",
    "NewId",
    "chat_usage",
    "finish_status",
    "from_completion",
    "output_items",
    "output_text_part",
    "response_object",
    "response_usage",
]

Item = dict[str, Any]
NewId = Callable[[str], str]
"""``new_id(prefix)``: a fresh id such as ``msg_...`` for the prefix ``msg``."""


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


def output_items(message: Mapping[str, Any], status: str, new_id: NewId) -> list[Item]:
    """A chat assistant message as output items: its text (a ``message``), then one
    ``function_call`` per tool call."""
    items: list[Item] = []
    text, refusal = _message_text(message), message.get("refusal")
    calls = message.get("tool_calls") or []
    if text or refusal or not calls:
        content = [output_text_part(text)] if text or not refusal else []
        if refusal:
            content.append({"type": "refusal", "refusal": str(refusal)})
        items.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": status,
                "role": "assistant",
                "content": content,
            }
        )
    for call in calls:
        function = call.get("function") or {}
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.get("id") or new_id("call"),
                "name": function.get("name") or "",
                "arguments": function.get("arguments") or "",
                "status": "completed",
            }
        )
    return items


def response_usage(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached, written = details.get("cached_tokens") or 0, details.get("cache_write_tokens") or 0
    thought = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": int(written)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(thought)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def chat_usage(usage: Mapping[str, Any] | None) -> dict[str, int] | None:
    """A Responses API ``usage`` in chat terms (what accounting reads)."""
    if not usage:
        return None
    prompt, completion = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def finish_status(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """``(status, incomplete_details)`` for a chat ``finish_reason``."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(
    body: Mapping[str, Any],
    *,
    id_: str,
    model: str,
    created_at: int,
    status: str = "in_progress",
    output: list[Item] | None = None,
    usage: dict[str, Any] | None = None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object echoing the request's settings, as OpenAI answers them."""
    text = body.get("text") or {}
    reasoning = body.get("reasoning") or {}
    return {
        "id": id_,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": created_at if status == "completed" else None,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": list(output or []),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": list(body.get("tools") or []),
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": body.get("user"),
        "metadata": dict(body.get("metadata") or {}),
    }


def from_completion(
    completion: ChatCompletion,
    body: Mapping[str, Any],
    *,
    id_: str,
    model: str,
    created_at: int,
    new_id: NewId,
) -> dict[str, Any]:
    """A ``chat.completion`` (first choice) as a finished ``response`` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0]
    status, incomplete = finish_status(choice.get("finish_reason"))
    return response_object(
        body,
        id_=id_,
        model=model,
        created_at=created_at,
        status=status,
        output=output_items(choice.get("message") or {}, status, new_id),
        usage=response_usage(completion.get("usage")),
        incomplete=incomplete,
    )
