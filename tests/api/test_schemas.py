"""Request bodies: what reaches the providers, and the 400-class consistency rules."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.api.openai_schemas import ChatCompletionRequest, EmbeddingsRequest
from aiservice.errors import InvalidRequestError

USER = [{"role": "user", "content": "x"}]


def chat(**body: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": USER, **body})


def test_provider_request_drops_routing_fields_but_keeps_schema_nulls_and_extras() -> None:
    nullable = {"type": ["string", "null"], "default": None}
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"properties": {"a": nullable}}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    request = chat(
        stream=True,
        stream_options={"include_usage": True},
        tools=[tool],
        response_format=fmt,
        reasoning_effort="low",
        temperature=None,
    ).provider_request()
    assert set(request) == {"messages", "tools", "response_format", "reasoning_effort"}
    assert request["tools"][0]["function"]["parameters"]["properties"]["a"] == nullable
    assert request["response_format"]["json_schema"]["schema"] == {"type": "object"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "a"}}],
                "tool_choice": {"type": "function", "function": {"name": "b"}},
            },
            "tool_choice",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
        ),
    ],
)
def test_inconsistent_requests_are_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat(**body).check()
    assert info.value.status_code == 400 and info.value.param == param


def test_consistent_request_passes_the_checks() -> None:
    chat(
        stream=True,
        stream_options={"include_usage": True},
        tools=[{"type": "function", "function": {"name": "a"}}],
        tool_choice={"type": "function", "function": {"name": "a"}},
    ).check()


def test_embedding_inputs() -> None:
    assert EmbeddingsRequest(model="m", input="one").texts() == ["one"]
    assert EmbeddingsRequest(model="m", input=["a", "b"]).texts() == ["a", "b"]
    with pytest.raises(InvalidRequestError):
        EmbeddingsRequest(model="m", input=[]).texts()
    with pytest.raises(InvalidRequestError):
        EmbeddingsRequest(model="m", input=[1, 2]).texts()
