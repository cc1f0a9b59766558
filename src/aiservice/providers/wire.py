"""Builders and readers for the OpenAI wire format shared by every provider.

Providers return plain dicts in the shape of OpenAI's ``chat.completion`` and
``chat.completion.chunk`` objects (see :mod:`aiservice.providers.base`); these helpers keep
that shape in one place so each provider module only does its own translation.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

__all__ = [
    "completion",
    "chunk",
    "estimate_tokens",
    "message_text",
    "new_id",
    "parse_arguments",
    "usage",
    "usage_chunk",
]


def new_id(prefix: str = "chatcmpl") -> str:
    # 96 random bits, as the 24 hex digits of a uuid4 gave; a uuid4 object costs ~4x more.
    return f"{prefix}-{os.urandom(12).hex()}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    model: str,
    message: dict[str, Any],
    finish_reason: str,
    usage_: dict[str, int],
    *,
    id_: str | None = None,
    created: int | None = None,
    choices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice (or the given ``choices``)."""
    return {
        "id": id_ or new_id(),
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": choices
        if choices is not None
        else [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage_,
    }


def chunk(
    id_: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    index: int = 0,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice delta."""
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        ],
    }


def usage_chunk(id_: str, model: str, created: int, usage_: dict[str, int]) -> dict[str, Any]:
    """The final chunk of every provider stream: ``choices: []`` and the token usage."""
    return {
        "id": id_,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_,
    }


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: a string content, or its text parts joined by newlines."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def estimate_tokens(text: str) -> int:
    """A rough token count (~4 characters per token) for upstreams that report none."""
    return (len(text) + 3) // 4


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict, whether given as a JSON string or already decoded."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            value = json.loads(arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}
