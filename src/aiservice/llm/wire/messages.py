"""Pure translation of an Anthropic Messages API request into the gateway's chat request.

Every deployment that does not speak the Messages API natively (see
:mod:`aiservice.providers.anthropic_native`) receives this translation; the limits, the
cache policy and the cache key of the chat request apply to it as to any chat request.

* ``system`` (a string or ``text`` blocks) becomes the first, ``system``, message.
* ``user`` turns: ``text`` blocks become text parts, ``image`` blocks (``base64`` or
  ``url`` source) ``image_url`` parts, and each ``tool_result`` block a ``tool`` message
  placed before the turn's other content (OpenAI wants the tool answers right after the
  assistant's calls). A tool result's content is its text; ``is_error`` prefixes it with
  ``"Error: "``, as OpenAI has no error flag.
* ``assistant`` turns: ``text`` blocks become the content, ``tool_use`` blocks
  ``tool_calls``. ``thinking`` / ``redacted_thinking`` blocks are dropped: only the model
  that wrote them can read them back.
* ``tools`` become function tools (``input_schema`` → ``parameters``); ``tool_choice``
  ``auto`` / ``any`` / ``tool`` / ``none`` become ``auto`` / ``required`` / the named
  function / ``none``; ``disable_parallel_tool_use`` becomes ``parallel_tool_calls: false``.
* ``max_tokens`` (required), ``temperature``, ``top_p`` keep their names,
  ``stop_sequences`` becomes ``stop``, ``metadata.user_id`` becomes ``user``.

Anything a translated deployment cannot honour is refused with a 400 naming the field
(:func:`untranslatable`): ``top_k``, ``thinking`` and any other field outside the list
above, ``document`` and other block types, server tools. ``cache_control`` markers are
hints and are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidRequestError

__all__ = ["TRANSLATED_FIELDS", "to_chat_request", "untranslatable"]

TRANSLATED_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "metadata",
        "stream",
    }
)
"""The request fields a translated deployment honours; the others need a native one."""

_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


def untranslatable(body: dict[str, Any]) -> str | None:
    """The first field of ``body`` that only a Messages API deployment can honour."""
    for name, value in body.items():
        if name not in TRANSLATED_FIELDS and value is not None:
            return name
    return None


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _invalid("a text block needs a string text", where)
    return text


def _system(system: Any) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system or None
    if not isinstance(system, list):
        raise _invalid("must be a string or a list of text blocks", "system")
    texts = []
    for i, block in enumerate(system):
        where = f"system[{i}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid("only text blocks are supported", where)
        texts.append(_text_of(block, where))
    return "\n\n".join(texts) or None


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _invalid("must be a string or a list of content blocks", where)
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid("a content block must be an object with a type", f"{where}[{i}]")
    return content


def _image_part(block: dict[str, Any], where: str, strict: bool) -> dict[str, Any] | None:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64" and source.get("media_type") and source.get("data"):
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif kind == "url" and source.get("url"):
        url = source["url"]
    elif strict:
        raise _invalid("only base64 and url image sources are supported", f"{where}.source")
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result_text(block: dict[str, Any], where: str, strict: bool) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts = []
        for i, part in enumerate(_blocks(content, f"{where}.content")):
            if part["type"] == "text":
                texts.append(_text_of(part, f"{where}.content[{i}]"))
            elif strict:
                raise _invalid("only text is supported in a tool result", f"{where}.content[{i}]")
        text = "\n".join(texts)
    return f"Error: {text}" if block.get("is_error") else text


def _user(content: Any, where: str, strict: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(_blocks(content, where)):
        at = f"{where}[{i}]"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            if (image := _image_part(block, at, strict)) is not None:
                parts.append(image)
        elif kind == "tool_result":
            if not isinstance(block.get("tool_use_id"), str):
                raise _invalid("a tool_result block needs a tool_use_id", at)
            text = _tool_result_text(block, at, strict)
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif strict:
            raise _invalid(f"{kind} blocks are not supported by this deployment", at)
    if not parts:
        return results
    if all(p["type"] == "text" for p in parts):
        user: dict[str, Any] = {"role": "user", "content": "".join(p["text"] for p in parts)}
        if len(parts) > 1:
            user["content"] = parts
    else:
        user = {"role": "user", "content": parts}
    return [*results, user]


def _assistant(content: Any, where: str, strict: bool) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(_blocks(content, where)):
        at = f"{where}[{i}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text_of(block, at))
        elif kind == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise _invalid("a tool_use block needs an id and a name", at)
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            function = {"name": block["name"], "arguments": arguments}
            calls.append({"id": block["id"], "type": "function", "function": function})
        elif strict and kind not in _SKIPPED_BLOCKS:
            raise _invalid(f"{kind} blocks are not supported by this deployment", at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _messages(body: dict[str, Any], strict: bool) -> list[dict[str, Any]]:
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise _invalid("at least one message is required", "messages")
    out: list[dict[str, Any]] = []
    system = _system(body.get("system"))
    if system is not None:
        out.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        where = f"messages[{i}]"
        role = turn.get("role") if isinstance(turn, dict) else None
        if role == "user":
            out.extend(_user(turn.get("content"), f"{where}.content", strict))
        elif role == "assistant":
            out.append(_assistant(turn.get("content"), f"{where}.content", strict))
        else:
            raise _invalid("role must be user or assistant", f"{where}.role")
    return out


def _tools(tools: Any, strict: bool) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _invalid("must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if isinstance(tool, dict) and tool.get("type", "custom") != "custom" and not strict:
            continue
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            raise _invalid("only client tools (name + input_schema) are supported", where)
        if not isinstance(tool.get("name"), str):
            raise _invalid("a tool needs a name", f"{where}.name")
        function: dict[str, Any] = {
            "name": tool["name"],
            "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, request: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _invalid("must be an object with a type", "tool_choice")
    kind = choice.get("type")
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _invalid("a tool choice of type tool needs a name", "tool_choice.name")
        request["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "any", "none"):
        request["tool_choice"] = "required" if kind == "any" else kind
    else:
        raise _invalid("type must be auto, any, tool or none", "tool_choice.type")
    if choice.get("disable_parallel_tool_use") and kind != "none":
        request["parallel_tool_calls"] = False


def to_chat_request(body: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """The chat request (no ``model``/``stream``) for a Messages API request body.

    ``strict=False`` (every deployment speaks the Messages API, so this translation is
    only read by the limits, the cache policy and token estimates) drops the blocks and
    tools it cannot express instead of refusing them."""
    request: dict[str, Any] = {"messages": _messages(body, strict)}
    if body.get("max_tokens") is not None:
        request["max_tokens"] = body["max_tokens"]
    if body.get("tools"):
        request["tools"] = _tools(body["tools"], strict)
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], request)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("stop_sequences"):
        request["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        request["user"] = str(user)
    return request
