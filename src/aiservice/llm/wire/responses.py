"""The OpenAI Responses API (``POST /v1/responses``) onto the chat format, as pure functions.

* :func:`check_request` refuses, with a 400 naming the field, what a chat deployment
  cannot do: hosted tools (web search, file search, computer use...), background mode,
  reusable prompts, server-side conversations, truncation ``auto``, reasoning summaries,
  and any field this module does not know. Hints that change no answer
  (``prompt_cache_key``, ``safety_identifier``, ``stream_options``) are accepted.
* :func:`input_items` normalises ``input`` (a string or a list of items) into items as
  they are stored for ``previous_response_id``; :func:`chat_messages` turns items (messages
  with ``input_text`` / ``output_text`` / ``input_image`` parts, ``function_call``,
  ``function_call_output``) into chat messages; :func:`to_chat_request` builds the whole
  ``ChatRequest`` (instructions as the system message, function tools, ``tool_choice``,
  ``text.format`` as ``response_format``, ``max_output_tokens``...).
* :func:`check_native` and :func:`native_body` are the pass-through's: only what the
  gateway cannot scope to a key is refused, and the body goes up as sent.
* The answer side is :mod:`.responses_output` (a ``chat.completion`` as a ``response``
  object) and :mod:`.responses_stream` (chunks as the streamed events).

Item ids come from the ``new_id`` callable the caller passes, so tests can pin them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...errors import InvalidRequestError
from .responses_output import Item, NewId

__all__ = [
    "check_native",
    "check_request",
    "chat_messages",
    "input_items",
    "native_body",
    "to_chat_request",
]


# Every top-level field of a request this module knows; anything else is refused by name.
_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "metadata",
        "parallel_tool_calls",
        "user",
        "store",
        "previous_response_id",
        "stream",
        "stream_options",
        "include",
        "truncation",
        "background",
        "reasoning",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        # Known, and refused when set: no chat deployment can honour them.
        "prompt",
        "conversation",
        "top_logprobs",
        "max_tool_calls",
        "context_management",
    }
)
_REFUSED_WHEN_SET = {
    "prompt": "reusable prompts (prompt) are not supported: send input and instructions",
    "conversation": "server-side conversations are not supported: use previous_response_id",
    "top_logprobs": "top_logprobs is not supported on /v1/responses",
    "max_tool_calls": "max_tool_calls is not supported on /v1/responses",
    "context_management": "context_management is not supported on /v1/responses",
}
_HOSTED = "only function tools are supported (hosted tools such as web_search, file_search, "
_HOSTED += "computer_use, code_interpreter, image_generation and mcp are not)"


def _refuse(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="unsupported_parameter")


def check_request(body: Mapping[str, Any]) -> None:
    """400 (``unsupported_parameter``, ``param`` naming the field) for what no chat
    deployment can do; types are the schema's business."""
    for name in body:
        if name not in _FIELDS:
            raise _refuse(f"unknown parameter {name!r}", name)
    for name, message in _REFUSED_WHEN_SET.items():
        if body.get(name) is not None:
            raise _refuse(message, name)
    if body.get("background"):
        raise _refuse("background mode is not supported: stream instead", "background")
    if body.get("include"):
        raise _refuse("include is not supported (no hosted tools or logprobs)", "include")
    if body.get("truncation") not in (None, "disabled"):
        raise _refuse("truncation 'auto' is not supported: only 'disabled'", "truncation")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise _refuse("service_tier may only be 'auto' or 'default'", "service_tier")
    reasoning = body.get("reasoning") or {}
    for key in ("summary", "generate_summary"):
        if reasoning.get(key) is not None:
            raise _refuse("reasoning summaries are not supported", f"reasoning.{key}")
    text = body.get("text") or {}
    if text.get("verbosity") is not None:
        raise _refuse("text.verbosity is not supported", "text.verbosity")
    fmt = text.get("format") or {}
    if fmt and fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _refuse(f"text.format type {fmt.get('type')!r} is not supported", "text.format.type")
    if fmt.get("type") == "json_schema" and not isinstance(fmt.get("schema"), dict):
        raise InvalidRequestError(
            "text.format json_schema needs a schema", param="text.format.schema"
        )
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function":
            raise _refuse(f"tool type {tool.get('type')!r}: {_HOSTED}", f"tools[{i}].type")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") != "function":
        raise _refuse(f"tool_choice type {choice.get('type')!r}: {_HOSTED}", "tool_choice")


def check_native(body: Mapping[str, Any]) -> None:
    """What a pass-through refuses: state the gateway cannot scope to the calling key
    (``conversation``) or poll for it (``background``)."""
    if body.get("background"):
        raise _refuse("background mode is not supported: stream instead", "background")
    if body.get("conversation") is not None:
        raise _refuse(_REFUSED_WHEN_SET["conversation"], "conversation")


def native_body(
    body: Mapping[str, Any], conversation: list[Item], *, expand: bool
) -> dict[str, Any]:
    """The body for a native deployment: as sent (``stream`` is the provider's), or with
    ``expand``, ``previous_response_id`` replaced by the ``conversation`` it names (a
    response the upstream never saw, answered through translation)."""
    out = {k: v for k, v in body.items() if k != "stream"}
    if expand:
        out.pop("previous_response_id", None)
        local = ("id", "status")  # ids the upstream never issued would be refused
        out["input"] = [{k: v for k, v in i.items() if k not in local} for i in conversation]
    return out


# -- input ---------------------------------------------------------------------------


def input_items(value: str | list[Any], new_id: NewId) -> list[Item]:
    """``input`` as items, each with an ``id`` (kept for ``previous_response_id``)."""
    if isinstance(value, str):
        text = {"type": "input_text", "text": value}
        return [{"type": "message", "id": new_id("msg"), "role": "user", "content": [text]}]
    items: list[Item] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequestError("input items must be objects", param=f"input[{i}]")
        kind = item.get("type") or "message"
        prefix = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
        items.append({**item, "type": kind, "id": item.get("id") or new_id(prefix.get(kind, "it"))})
    return items


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text") or "")}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal") or "")}
    if kind == "input_image" and role == "user":
        if not part.get("image_url"):
            raise _refuse("input_image needs an image_url (file_id is not supported)", where)
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _refuse(f"content part type {kind!r} is not supported here", f"{where}.type")


def _content(content: Any, role: str, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError("content must be a string or a list of parts", param=where)
    parts = [_part(p, role, f"{where}[{j}]") for j, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _output_text(value: Any) -> str:
    """A ``function_call_output``'s ``output``: a string, or parts whose text is joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(p.get("text") or "") for p in value if isinstance(p, dict))
    return json.dumps(value)


def chat_messages(items: list[Item], param: str = "input") -> list[dict[str, Any]]:
    """Items as chat messages. A ``function_call`` joins the assistant message before it,
    as the chat format carries text and tool calls of one turn in one message."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"{param}[{i}]"
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise InvalidRequestError(f"message role {role!r} is not supported", param=where)
            content = _content(item.get("content"), str(role), f"{where}.content")
            messages.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id") or item.get("id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = _output_text(item.get("output"))
            call_id = item.get("call_id")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # produced by a reasoning model upstream; a chat turn cannot carry it back
        else:
            raise _refuse(f"input item type {kind!r} is not supported", f"{where}.type")
    return messages


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _response_format(fmt: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type")
    if kind == "json_schema":
        keys = ("name", "schema", "strict", "description")
        return {"type": "json_schema", "json_schema": {k: fmt[k] for k in keys if k in fmt}}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def to_chat_request(
    body: Mapping[str, Any], messages: list[dict[str, Any]], *, reasoning: bool = False
) -> dict[str, Any]:
    """The chat body (``model`` and ``stream`` included, for the chat request schema).

    ``messages`` are the conversation (history, then this request's input) as chat
    messages; ``instructions`` go first as the system message. ``reasoning`` says whether
    the model's deployments take ``reasoning_effort`` (else ``reasoning.effort`` is a 400).
    """
    chat: dict[str, Any] = {"model": body.get("model"), "messages": list(messages)}
    if body.get("instructions"):
        chat["messages"].insert(0, {"role": "system", "content": str(body["instructions"])})
    if body.get("tools"):
        chat["tools"] = [_tool(t) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("parallel_tool_calls") is not None and body.get("tools"):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    fmt = _response_format((body.get("text") or {}).get("format") or {})
    if fmt is not None:
        chat["response_format"] = fmt
    for ours, theirs in (
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        if not reasoning:
            raise _refuse(
                "reasoning.effort is not supported by this model's deployments",
                "reasoning.effort",
            )
        chat["reasoning_effort"] = effort
    return chat
