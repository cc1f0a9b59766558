"""Request bounds (``limits.requests``) and the text checks of the gateway.

Every check here runs before any upstream call or cache lookup and costs time linear in
the request, never in what the request *asks for*: that is the point. A request over a
bound is an :class:`~aiservice.errors.InvalidRequestError` (400) whose ``param`` is the
request field and whose message names the limit and its config key.

The text checks also guard the way out: a lone UTF-16 surrogate (``"\\ud800"``, legal in
JSON text and in a Python ``str``, not encodable as UTF-8) or a non-finite float cannot be
serialised into a response, so an upstream answer carrying one is a protocol error of that
upstream (502), found before it reaches a client or the cache.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from ..config.sections import RequestLimits

__all__ = ["MAX_DEPTH", "check_chat", "check_embeddings", "find_unencodable", "is_encodable"]

_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 64
"""Nesting deeper than this is unencodable (the serialisers that follow would recurse)."""


def _over(param: str, value: int, limit: int, key: str, what: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{param} is {value}, over the limit of {limit} {what} (limits.requests.{key})",
        code="limit_exceeded",
        param=param,
    )


def check_chat(
    request: Mapping[str, Any], limits: RequestLimits, *, text_checked: bool = False
) -> None:
    """Raise a 400 for a chat request over a bound or carrying unencodable text.

    ``text_checked``: the request was validated from a body that
    :func:`~aiservice.security.json_guard.parse_json_body` accepted with a depth limit of
    at most :data:`MAX_DEPTH`, so it can hold neither a lone surrogate nor a non-finite
    number nor deeper nesting: the walk over every value is skipped."""
    messages = request.get("messages") or []
    if len(messages) > limits.max_messages:
        raise _over("messages", len(messages), limits.max_messages, "max_messages", "messages")
    tools = request.get("tools") or []
    if len(tools) > limits.max_tools:
        raise _over("tools", len(tools), limits.max_tools, "max_tools", "tools")
    n = request.get("n")
    if isinstance(n, int) and n > limits.max_n:
        raise _over("n", n, limits.max_n, "max_n", "choices")
    for name in ("max_tokens", "max_completion_tokens"):
        value = request.get(name)
        if isinstance(value, int) and value > limits.max_tokens:
            raise _over(name, value, limits.max_tokens, "max_tokens", "tokens")
    if text_checked:
        return
    bad = find_unencodable(request)
    if bad is not None:
        raise _unencodable(bad)


def check_embeddings(inputs: Sequence[str], dimensions: int | None, limits: RequestLimits) -> None:
    """Raise a 400 for an embeddings request over a bound or carrying unencodable text."""
    if len(inputs) > limits.max_embedding_inputs:
        raise _over(
            "input", len(inputs), limits.max_embedding_inputs, "max_embedding_inputs", "inputs"
        )
    if dimensions is not None:
        if dimensions > limits.max_embedding_dimensions:
            raise _over(
                "dimensions",
                dimensions,
                limits.max_embedding_dimensions,
                "max_embedding_dimensions",
                "dimensions",
            )
        values = len(inputs) * dimensions
        if values > limits.max_embedding_values:
            raise InvalidRequestError(
                f"{len(inputs)} inputs × {dimensions} dimensions = {values} values, over the "
                f"limit of {limits.max_embedding_values} (limits.requests.max_embedding_values)"
                "; send fewer inputs per request",
                code="limit_exceeded",
                param="input",
            )
    for index, text in enumerate(inputs):
        if not text.isascii() and _SURROGATE.search(text):
            raise _unencodable(f"input[{index}]")


def _unencodable(path: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{path} contains a lone UTF-16 surrogate, which is not valid Unicode text",
        code="invalid_text",
        param=path,
    )


def _bad_leaf(item: Any) -> bool:
    if isinstance(item, str):
        return not item.isascii() and _SURROGATE.search(item) is not None
    return isinstance(item, float) and not math.isfinite(item)


def is_encodable(value: Any) -> bool:
    """Whether ``value`` serialises as strict JSON in UTF-8 (no path bookkeeping: this runs
    on every upstream answer and stream chunk).

    Only containers go on the stack; the leaves of one are checked in a loop over it, the
    common types (``str``, ``int``, ``dict``, ``list``, ``None``, ``bool``) by exact type,
    anything else as :func:`_bad_leaf` judges it: one tuple per container instead of one
    per value, and no call per string (the walk was most of the cost of a small answer).
    """
    if not isinstance(value, dict | list | tuple):
        return not _bad_leaf(value)
    search, isfinite = _SURROGATE.search, math.isfinite
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        container, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return False
        if isinstance(container, dict):
            for key in container:
                if _bad_leaf(key):
                    return False
            children: Any = container.values()
        else:
            children = container
        for item in children:
            kind = type(item)
            if kind is str:
                if not item.isascii() and search(item) is not None:
                    return False
            elif kind is dict or kind is list:
                stack.append((item, depth + 1))
            elif kind is float:
                if not isfinite(item):
                    return False
            elif kind is int or kind is bool or item is None:
                continue
            elif isinstance(item, dict | list | tuple):
                stack.append((item, depth + 1))
            elif _bad_leaf(item):
                return False
    return True


def find_unencodable(value: Any, path: str = "") -> str | None:
    """The path (``messages[2].content``) of the first string holding a lone surrogate or
    the first non-finite float in a JSON-like value, else ``None``.

    Iterative, so a deeply nested value cannot exhaust the stack; nesting deeper than
    64 levels is reported as unencodable too (the serialisers that follow would recurse
    on it).
    """
    if is_encodable(value):
        return None
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_DEPTH or any(_bad_leaf(key) for key in item):
                return where or "value"
            stack.extend(
                (child, f"{where}.{key}" if where else str(key), depth + 1)
                for key, child in item.items()
            )
        elif isinstance(item, list | tuple):
            if depth >= MAX_DEPTH:
                return where or "value"
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif _bad_leaf(item):
            return where or "value"
    return "value"
