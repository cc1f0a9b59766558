"""Request bodies of the OpenAI-compatible endpoints.

Type errors in a body are 422 (the app-wide validation handler); requests that are
well-typed but inconsistent (a ``tool_choice`` naming no given tool, ``stream_options``
without ``stream``, an empty ``messages``) are 400, as OpenAI answers them. Unknown fields
are kept and passed to the provider, so newer OpenAI parameters reach OpenAI-compatible
upstreams without a release here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidRequestError
from ..providers.base import ChatRequest

__all__ = ["ChatCompletionRequest", "EmbeddingsRequest"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(_Open):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(_Open):
    name: str = "response"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=16)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormat | None = None

    def check(self) -> None:
        """The 400-class consistency rules (see the module docstring)."""
        if not self.messages:
            raise InvalidRequestError("messages must not be empty", param="messages")
        if self.stream_options is not None and not self.stream:
            raise InvalidRequestError(
                "stream_options is only allowed when stream is true", param="stream_options"
            )
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or []}
            if self.tool_choice.function.name not in names:
                raise InvalidRequestError(
                    f"tool_choice names {self.tool_choice.function.name!r}, which is not in tools",
                    param="tool_choice",
                )
        if self.tool_choice is not None and not self.tools and self.tool_choice != "none":
            raise InvalidRequestError("tool_choice requires tools", param="tool_choice")
        fmt = self.response_format
        if fmt is not None and fmt.type == "json_schema":
            if fmt.json_schema is None or fmt.json_schema.schema_ is None:
                raise InvalidRequestError(
                    "response_format json_schema needs json_schema.schema",
                    param="response_format",
                )

    def provider_request(self) -> ChatRequest:
        """The body for the providers: without ``model``/``stream``/``stream_options``."""
        return self.model_dump(
            exclude={"model", "stream", "stream_options"}, exclude_none=True, by_alias=True
        )


class EmbeddingsRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(None, ge=1, le=65_536)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    def texts(self) -> list[str]:
        value = self.input
        if isinstance(value, str):
            return [value]
        if not value:
            raise InvalidRequestError("input must not be empty", param="input")
        if not all(isinstance(item, str) for item in value):
            raise InvalidRequestError(
                "token-array inputs are not supported: send strings", param="input"
            )
        return [str(item) for item in value]
