"""The Responses API translation (pure): recorded request bodies of the official SDKs in,
chat requests out; recorded chat completions and chunk streams in, response objects and
the event sequence out, each validated against the ``openai`` SDK's own types."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from aiservice.errors import InvalidRequestError
from aiservice.llm.cache.chunks import chunks_to_completion
from aiservice.llm.wire.responses import (
    chat_messages,
    check_native,
    check_request,
    input_items,
    native_body,
    to_chat_request,
)
from aiservice.llm.wire.responses_output import chat_usage, from_completion
from aiservice.llm.wire.responses_stream import ResponseEvents
from tests.providers.fixtures.upstream import sse_data

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
EVENTS = TypeAdapter(ResponseStreamEvent)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def chunks(name: str) -> list[dict[str, Any]]:
    return [e for e in sse_data((FIXTURES / name).read_text().replace("data: [DONE]", ""))]


def ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def translate(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    check_request(body)
    return to_chat_request(body, chat_messages(input_items(body["input"], ids())), **kw)


# -- requests ------------------------------------------------------------------------


def test_sdk_tool_round_trip_request_becomes_one_chat_request() -> None:
    chat = translate(load("sdk_tool_round_trip_request.json"))
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    function = chat["tools"][0]["function"]
    assert chat["tools"][0]["type"] == "function"
    assert function["name"] == "get_weather" and function["strict"] is True
    assert function["parameters"]["required"] == ["city"]
    assert chat["tool_choice"] == "auto" and chat["parallel_tool_calls"] is False
    assert chat["max_completion_tokens"] == 200 and chat["temperature"] == 0.2
    assert chat["user"] == "u-1" and "metadata" not in chat


def test_parse_request_asks_for_the_json_schema_as_response_format() -> None:
    chat = translate(load("sdk_parse_request.json"))
    assert chat["messages"] == [{"role": "user", "content": "Oslo facts"}]
    fmt = chat["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "City" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["name", "population"]


def test_agents_sdk_request_is_accepted_with_its_empty_include() -> None:
    chat = translate(load("agents_request.json"))
    assert chat["messages"][0] == {"role": "system", "content": "Use the tool."}
    assert chat["messages"][1] == {"role": "user", "content": "Weather in Paris?"}
    assert chat["tools"][0]["function"]["name"] == "get_weather"


def test_items_keep_parts_images_and_merge_calls_into_the_assistant_turn() -> None:
    items = input_items(
        [
            {"role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "a cat", "annotations": []}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"text": "ok"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
        ids(),
    )
    assert [i["id"] for i in items] == ["msg_1", "msg_2", "msg_3", "fc_4", "fco_5", "rs_1"]
    messages = chat_messages(items)
    assert messages[0] == {"role": "system", "content": "rules"}
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/cat.png", "detail": "low"},
    }
    assert messages[2]["content"] == "a cat"
    assert messages[2]["tool_calls"][0]["id"] == "c1"
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    assert len(messages) == 4  # the reasoning item has no chat form


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]}, "tools[1].type"),
        ({"tool_choice": {"type": "computer_use_preview"}}, "tool_choice"),
        ({"background": True}, "background"),
        ({"include": ["file_search_call.results"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_what_a_chat_deployment_cannot_do_is_a_400_naming_the_field(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_request({"model": "m", "input": "hi", **extra})
    assert info.value.param == param and info.value.status_code == 400


@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "item_reference", "id": "msg_1"}, "input[0].type"),
        (
            {"role": "user", "content": [{"type": "input_file", "file_id": "f"}]},
            "input[0].content[0].type",
        ),
        (
            {"role": "user", "content": [{"type": "input_image", "file_id": "f"}]},
            "input[0].content[0]",
        ),
        ({"role": "tool", "content": "x"}, "input[0]"),
    ],
)
def test_unservable_items_are_a_400_naming_the_item(item: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        chat_messages(input_items([item], ids()))
    assert info.value.param == param


def test_reasoning_effort_only_where_the_deployments_take_it() -> None:
    body = {"model": "m", "input": "hi", "reasoning": {"effort": "low"}}
    with pytest.raises(InvalidRequestError) as info:
        translate(body)
    assert info.value.param == "reasoning.effort"
    assert translate(body, reasoning=True)["reasoning_effort"] == "low"


def test_native_requests_refuse_only_state_the_gateway_cannot_scope() -> None:
    check_native({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]})
    with pytest.raises(InvalidRequestError) as info:
        check_native({"model": "m", "input": "hi", "conversation": "conv_1"})
    assert info.value.param == "conversation"


def test_native_body_expands_a_conversation_the_upstream_never_saw() -> None:
    conversation = input_items("hi", ids()) + [
        {"type": "message", "id": "msg_9", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
    ]  # fmt: skip
    body = {"model": "m", "input": "next", "previous_response_id": "resp_1", "stream": True}
    assert native_body(body, conversation, expand=False) == {
        "model": "m",
        "input": "next",
        "previous_response_id": "resp_1",
    }
    expanded = native_body(body, conversation, expand=True)
    assert "previous_response_id" not in expanded
    assert [set(i) for i in expanded["input"]] == [
        {"type", "role", "content"},
        {"type", "role", "content"},
    ]


# -- responses -----------------------------------------------------------------------


def test_completion_with_text_and_tool_call_becomes_a_response() -> None:
    body = load("sdk_tool_round_trip_request.json")
    response = from_completion(
        load("chat_tool_completion.json"), body, id_="resp_1", model="m", created_at=5, new_id=ids()
    )
    Response.model_validate(response)  # the SDK's own type accepts it
    message, call = response["output"]
    assert message["type"] == "message" and message["id"] == "msg_1"
    assert message["content"][0]["text"] == "Let me check."
    assert call == {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert response["usage"] == {
        "input_tokens": 82,
        "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
        "output_tokens": 17,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 99,
    }
    assert response["status"] == "completed" and response["model"] == "m"
    assert response["metadata"] == {"team": "a"} and response["instructions"] == "Be brief."
    assert response["parallel_tool_calls"] is False and response["store"] is True
    assert chat_usage(response["usage"]) == {
        "prompt_tokens": 82,
        "completion_tokens": 17,
        "total_tokens": 99,
    }


def _stream(name: str, body: dict[str, Any]) -> tuple[ResponseEvents, list[dict[str, Any]]]:
    events = ResponseEvents(body, id_="resp_s", model="m", created_at=7, new_id=ids())
    out = events.start()
    for chunk in chunks(name):
        out += events.feed(chunk)
    return events, out + events.finish()


def test_streamed_tool_calls_give_the_sdk_event_sequence() -> None:
    events, out = _stream("chat_tool_stream.sse", {"model": "m", "input": "x"})
    for event in out:
        EVENTS.validate_python(event)
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    final = out[-1]["response"]
    assert final["usage"]["input_tokens"] == 70 and final["status"] == "completed"
    first, second = final["output"]
    assert (first["call_id"], first["arguments"]) == ("call_a1", '{"city":"Paris"}')
    assert (second["call_id"], second["name"]) == ("call_b2", "get_time")
    added = [e["item"]["id"] for e in out if e["type"] == "response.output_item.added"]
    done = [e["item"]["id"] for e in out if e["type"] == "response.output_item.done"]
    assert added == done == [first["id"], second["id"]]
    assert events.response is final


def test_a_cut_answer_streams_as_incomplete_with_the_text_so_far() -> None:
    _, out = _stream("chat_text_stream.sse", {"model": "m", "input": "x"})
    for event in out:
        EVENTS.validate_python(event)
    deltas = [e["delta"] for e in out if e["type"] == "response.output_text.delta"]
    assert deltas == ["Hello", " there"]
    final = out[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"
    assert final["response"]["output"][0]["content"][0]["text"] == "Hello there"


@pytest.mark.parametrize("name", ["chat_tool_stream.sse", "chat_text_stream.sse"])
def test_a_stream_ends_as_the_same_response_its_completion_gives(name: str) -> None:
    body = {"model": "m", "input": "x"}
    _, out = _stream(name, body)
    completion = chunks_to_completion(chunks(name))
    whole = from_completion(completion, body, id_="resp_s", model="m", created_at=7, new_id=ids())
    assert out[-1]["response"] == whole


def test_a_failure_midway_ends_with_response_failed_and_the_output_so_far() -> None:
    events = ResponseEvents(
        {"model": "m", "input": "x"}, id_="r", model="m", created_at=1, new_id=ids()
    )
    out = events.start() + events.feed(chunks("chat_text_stream.sse")[1])
    out += events.fail("upstream_error", "the upstream reset the connection")
    EVENTS.validate_python(out[-1])
    failed = out[-1]["response"]
    assert out[-1]["type"] == "response.failed" and failed["status"] == "failed"
    assert failed["error"] == {
        "code": "server_error",
        "message": "the upstream reset the connection (upstream_error)",
    }
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Hello"


def test_an_empty_answer_is_one_empty_message_streamed_or_not() -> None:
    body = {"model": "m", "input": "x"}
    events = ResponseEvents(body, id_="r", model="m", created_at=1, new_id=ids())
    out = events.start() + events.finish()
    assert [i["type"] for i in out[-1]["response"]["output"]] == ["message"]
    assert out[-1]["response"]["output"][0]["content"][0]["text"] == ""
    completion = {"choices": [{"message": {"role": "assistant", "content": ""}}]}
    whole = from_completion(completion, body, id_="r", model="m", created_at=1, new_id=ids())
    assert whole["output"][0]["content"][0]["text"] == ""
