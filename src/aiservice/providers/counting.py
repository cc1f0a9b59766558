"""Token counting by the upstream, for the providers whose API offers it.

An optional capability beside :class:`~.base.Provider`: the Messages API's
``count_tokens`` asks the model's primary deployment for an exact count when its
provider implements this protocol (Gemini's ``countTokens``), and estimates otherwise.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .base import ChatRequest

__all__ = ["CountsChatTokens"]


@runtime_checkable
class CountsChatTokens(Protocol):
    async def count_chat_tokens(self, model: str, request: ChatRequest) -> int:
        """The input tokens of ``request`` (a chat request) for ``model``, counted upstream."""
        ...
