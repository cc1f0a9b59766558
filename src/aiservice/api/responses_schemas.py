"""Request and response bodies of ``/v1/responses`` (the OpenAI Responses API).

Type errors are 422 (the app-wide validation handler); what is well-typed but not
servable by a chat deployment (hosted tools, background mode, unknown fields...) is a 400
from :func:`aiservice.llm.wire.responses.check_request`, which reads the body as sent.
The response models document the wire format; handlers never validate against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InputItemList", "ResponseDeleted", "ResponseObject", "ResponsesRequest"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionTool(_Open):
    type: str = Field(description="Only `function` is served; hosted tool types are a 400")
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextConfig(_Open):
    format: dict[str, Any] | None = Field(
        None,
        description="`{type: text}`, `{type: json_object}` or "
        "`{type: json_schema, name, schema, strict}` (structured output)",
    )


class ResponsesRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(
        description="A user message, or items: messages (`input_text`/`output_text`/"
        "`input_image` parts), `function_call`, `function_call_output`"
    )
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    store: bool = True
    previous_response_id: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    background: bool | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None


class ResponseObject(_Open):
    """``application/json`` answer; with ``stream: true`` the answer is ``text/event-stream``
    of ``event: <type>`` / ``data: {...}`` events ending with ``response.completed``."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "failed", "in_progress"]
    model: str
    output: list[dict[str, Any]]
    usage: dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool


class ResponseDeleted(_Open):
    id: str
    object: Literal["response"]
    deleted: Literal[True]


class InputItemList(_Open):
    object: Literal["list"]
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool
