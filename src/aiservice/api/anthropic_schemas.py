"""Request and response bodies of the Anthropic Messages API routes (for validation and
the OpenAPI document).

Content blocks stay open objects: the translation (:mod:`aiservice.llm.wire.messages`)
checks them and answers a 400 naming the exact field, and a deployment that speaks the
Messages API receives them untouched, so new block types need no release here. Unknown
top-level fields are kept for the same reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnthropicErrorResponse",
    "CountTokensRequest",
    "CountTokensResponse",
    "Message",
    "MessagesRequest",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageParam(_Open):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _Prompt(_Open):
    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None


class MessagesRequest(_Prompt):
    """``POST /v1/messages``; ``max_tokens`` is required, as at Anthropic."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    stream: bool = False


class CountTokensRequest(_Prompt):
    """``POST /v1/messages/count_tokens``: the prompt of a message, no ``max_tokens``."""


class CountTokensResponse(BaseModel):
    input_tokens: int


class Usage(_Open):
    input_tokens: int
    output_tokens: int


class Message(_Open):
    """A Messages API response (streamed: ``text/event-stream`` of Anthropic's events)."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: Usage


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    """``{"type": "error", "error": {"type", "message"}}``: every non-2xx answer on the
    ``/v1/messages`` routes."""

    type: Literal["error"]
    error: AnthropicErrorDetail
