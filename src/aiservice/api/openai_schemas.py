"""Request and response bodies of the OpenAI-compatible endpoints.

Type errors in a body are 422 (the app-wide validation handler); requests that are
well-typed but inconsistent (a ``tool_choice`` naming no given tool, ``stream_options``
without ``stream``, an empty ``messages``) are 400, as OpenAI answers them. Unknown fields
are kept and passed to the provider, so newer OpenAI parameters reach OpenAI-compatible
upstreams without a release here. The OpenAPI schema of a request states the 400 rules it
can (``messages`` not empty, ``stream_options`` only with ``stream``), so a client built from
it sends only what is accepted.

The response models document the wire format (the OpenAPI document, client generators);
handlers send the provider's JSON as it is and never validate against them.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..errors import InvalidRequestError
from ..providers.base import ChatRequest

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "EmbeddingsRequest",
    "EmbeddingsResponse",
    "ModelInfo",
    "ModelList",
]


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


# ``type: json_schema`` needs ``json_schema.schema`` (the 400 rule of ``check``).
_JSON_SCHEMA_RULE: dict[str, Any] = {
    "if": {"required": ["type"], "properties": {"type": {"const": "json_schema"}}},
    "then": {
        "required": ["json_schema"],
        "properties": {
            "json_schema": {
                "type": "object",
                "required": ["schema"],
                "properties": {"schema": {"type": "object"}},
            }
        },
    },
}


class ResponseFormat(_Open):
    model_config = ConfigDict(json_schema_extra=_JSON_SCHEMA_RULE)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Open):
    include_usage: bool = False


# ``stream_options`` needs ``stream: true`` (the 400 rule of ``check``), said in the schema.
_STREAM_OPTIONS_RULE: dict[str, Any] = {
    "if": {"required": ["stream_options"], "properties": {"stream_options": {"type": "object"}}},
    "then": {"required": ["stream"], "properties": {"stream": {"const": True}}},
}


class ChatCompletionRequest(_Open):
    model_config = ConfigDict(json_schema_extra=_STREAM_OPTIONS_RULE)

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(json_schema_extra={"minItems": 1})
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


# What is accepted; token arrays parse (for a helpful 400) but are not supported.
_TEXT_INPUT = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    }
)


class EmbeddingsRequest(_Open):
    model: str = Field(min_length=1)
    input: Annotated[str | list[str] | list[int] | list[list[int]], _TEXT_INPUT]
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


# -- responses (documentation of the wire format) --------------------------------------


class Usage(_Open):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class AssistantMessage(_Open):
    role: Literal["assistant"]
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class Choice(_Open):
    index: int
    message: AssistantMessage
    finish_reason: str | None = None


class ChatCompletion(_Open):
    """``application/json`` answer; with ``stream: true`` the answer is ``text/event-stream``
    of ``data: {chat.completion.chunk}`` events ending with ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class Embedding(_Open):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str
    """Floats, or base64 of little-endian float32 with ``encoding_format: base64``."""


class EmbeddingsResponse(_Open):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelInfo(_Open):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Open):
    object: Literal["list"]
    data: list[ModelInfo]
