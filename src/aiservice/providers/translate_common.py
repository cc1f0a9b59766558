"""Pieces of OpenAI-request translation shared by the Anthropic, Gemini and Bedrock providers.

Everything here is pure: it reads the OpenAI-shaped request dict and raises
:class:`~aiservice.errors.InvalidRequestError` (a 400 for the client, never a fallback) when
a request cannot be expressed upstream.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import InvalidRequestError
from . import wire
from .base import ProviderError

__all__ = [
    "DataUrl",
    "TurnBuilder",
    "append_turn",
    "assistant_message",
    "content_parts",
    "image_url_of",
    "json_instruction",
    "max_output_tokens",
    "parse_data_url",
    "require_single_choice",
    "split_messages",
    "stop_sequences",
    "stream_cut",
    "tool_call",
    "tool_call_names",
    "tool_result_text",
    "usage_with_cache",
]

TurnBuilder = tuple[str, Callable[[dict[str, Any]], list[dict[str, Any]]]]
"""The upstream role a message becomes, and the blocks it contributes to that turn."""


class DataUrl:
    """A decoded ``data:<media type>;base64,<data>`` URL."""

    __slots__ = ("media_type", "data")

    def __init__(self, media_type: str, data: str) -> None:
        self.media_type = media_type
        self.data = data  # base64 text, validated

    def raw(self) -> bytes:
        return base64.b64decode(self.data)


def parse_data_url(url: str) -> DataUrl | None:
    """The media type and base64 payload of a data URL; ``None`` for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise InvalidRequestError(
            "image data URLs must look like data:<media type>;base64,<data>", param="messages"
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequestError("image data URL is not valid base64", param="messages") from exc
    return DataUrl(media_type, data)


def content_parts(content: Any) -> Iterator[dict[str, Any]]:
    """A message's content as OpenAI parts (a plain string becomes one text part)."""
    if content is None:
        return
    if isinstance(content, str):
        if content:
            yield {"type": "text", "text": content}
        return
    if not isinstance(content, list):
        raise InvalidRequestError("message content must be a string or a list", param="messages")
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequestError(
                f"content part type {kind!r} is not supported by this provider", param="messages"
            )
        if part["type"] == "text" and not part.get("text"):
            continue
        yield part


def image_url_of(part: dict[str, Any]) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequestError("image_url part without a url", param="messages")
    return url


def tool_result_text(message: dict[str, Any]) -> str:
    """The content of a ``tool`` message as text (list contents joined)."""
    return wire.message_text(message)


def tool_call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """``tool_call_id`` → function name, from the assistant turns of a conversation.

    Upstreams that key tool results by function name (Gemini) need it: OpenAI ``tool``
    messages carry only the call id.
    """
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            if call.get("id") and function.get("name"):
                names[call["id"]] = function["name"]
    return names


def max_output_tokens(request: dict[str, Any]) -> int | None:
    value = request.get("max_completion_tokens") or request.get("max_tokens")
    return int(value) if value else None


def stop_sequences(request: dict[str, Any]) -> list[str]:
    stop = request.get("stop")
    if not stop:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def require_single_choice(request: dict[str, Any], provider: str) -> None:
    if (request.get("n") or 1) > 1:
        raise InvalidRequestError(f"{provider} does not support n > 1", param="n")


def json_instruction(response_format: Any) -> str | None:
    """A system-prompt instruction for JSON mode on upstreams without a native JSON mode.

    ``json_object`` asks for one JSON object; ``json_schema`` includes the schema. Models
    follow it reliably but it is not a grammar constraint, so the reply is not guaranteed
    to validate against the schema.
    """
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "Respond with a single valid JSON object and nothing else (no prose, no fences)."
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = json.dumps(spec.get("schema") or {}, separators=(",", ":"), sort_keys=True)
        return (
            "Respond with a single valid JSON value that conforms to this JSON Schema, "
            f"and nothing else (no prose, no fences): {schema}"
        )
    return None


# -- conversation turns --------------------------------------------------------------------


def append_turn(
    turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], key: str = "content"
) -> None:
    """Add ``blocks`` as a ``role`` turn, merging into the last turn when it has that role.

    Anthropic, Gemini and Bedrock require alternating roles, and parallel tool results
    share one user turn; ``key`` is where a turn keeps its blocks (Gemini: ``parts``).
    """
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(blocks)
    else:
        turns.append({"role": role, key: blocks})


def split_messages(
    messages: list[dict[str, Any]], builders: Mapping[str, TurnBuilder], key: str = "content"
) -> tuple[list[str], list[dict[str, Any]]]:
    """OpenAI messages as (non-empty system texts, alternating upstream turns).

    ``system`` and ``developer`` messages become system text; every other role is looked up
    in ``builders`` (role → upstream role and block builder). A role not there is a 400.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(wire.message_text(message))
            continue
        builder = builders.get(role) if isinstance(role, str) else None
        if builder is None:
            raise InvalidRequestError(f"message role {role!r} is not supported", param="messages")
        upstream_role, build = builder
        append_turn(turns, upstream_role, build(message), key)
    return [s for s in system if s], turns


# -- responses and streams ------------------------------------------------------------------


def tool_call(id_: str, name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` entry; ``arguments`` (a decoded object) becomes compact JSON."""
    encoded = json.dumps(arguments or {}, separators=(",", ":"))
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": encoded}}


def assistant_message(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant message; ``content`` is ``None`` only for a tool-call-only reply."""
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def usage_with_cache(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    """OpenAI usage, with ``prompt_tokens_details.cached_tokens`` when any were cached."""
    out: dict[str, Any] = wire.usage(prompt, completion)
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def stream_cut(provider: str, missing: str) -> ProviderError:
    """The error for a stream that ended before ``missing`` (its end-of-answer marker).

    A cut connection must not look like a complete answer to the client.
    """
    return ProviderError(
        f"{provider} stream ended before {missing}", kind="connect", provider=provider
    )
