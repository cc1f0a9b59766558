"""Anthropic Messages API requests passed through natively, inside the chat currency.

The gateway, the response cache and the accounting speak the OpenAI chat format. A
Messages API request reaches them as a :class:`MessagesRequest`: the chat request
translated from the client's body (what every other provider uses, and what limits and
the cache policy read), carrying that body untouched in ``native``. A provider that
speaks the Messages API (``anthropic``) sends ``native`` itself, with only ``model`` and
``stream`` set, instead of translating the chat request back: no double translation.

Its answer is still read into chat chunks (:class:`~.anthropic_translate.AnthropicStream`:
usage for accounting, text for the checks), and each chunk also carries the upstream
events it came from under :data:`NATIVE_EVENTS`, so the route replays them verbatim, on
a cache hit too (entries store the chunks as they are).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .anthropic_translate import AnthropicStream
from .base import ChatChunk

__all__ = [
    "NATIVE_EVENTS",
    "MessagesNative",
    "MessagesRequest",
    "NativeEvents",
    "native_body",
]

NATIVE_EVENTS = "anthropic_events"
"""The chunk key holding the upstream Messages API stream events behind that chunk."""


class MessagesRequest(dict[str, Any]):
    """A chat request that also carries the client's Messages API body (``native``)."""

    __slots__ = ("native",)

    def __init__(self, chat: dict[str, Any], native: dict[str, Any]) -> None:
        super().__init__(chat)
        self.native = native


@runtime_checkable
class MessagesNative(Protocol):
    """A provider that speaks the Messages API: it sends a :class:`MessagesRequest`'s
    ``native`` body as it is and counts tokens upstream."""

    async def count_message_tokens(self, model: str, body: dict[str, Any]) -> int: ...


def native_body(model: str, request: MessagesRequest, *, stream: bool) -> dict[str, Any]:
    """The client's body for the upstream model; ``stream`` set by the call, not the client."""
    body = {k: v for k, v in request.native.items() if k != "stream"}
    body["model"] = model
    if stream:
        body["stream"] = True
    return body


class NativeEvents:
    """:class:`AnthropicStream` whose chunks carry the events they came from.

    Events that make no chunk (``ping``, ``content_block_stop``, a start with no text)
    ride on the next chunk; ``message_stop`` always makes one (the usage chunk), so no
    event is left behind.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.translator = AnthropicStream(provider, model)
        self._pending: list[dict[str, Any]] = []

    @property
    def done(self) -> bool:
        return self.translator.done

    def feed(self, event: dict[str, Any]) -> list[ChatChunk]:
        chunks = self.translator.feed(event)  # an ``error`` event raises ProviderError
        self._pending.append(event)
        if chunks:
            chunks[0][NATIVE_EVENTS] = self._pending
            self._pending = []
        return chunks

    def finish(self) -> None:
        self.translator.finish()
