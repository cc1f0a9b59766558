"""The Messages API translation (aiservice.llm.wire.messages / messages_events) on recorded
payloads: a tool-use conversation as the anthropic SDK sends it, an OpenAI stream with a
tool call, and Anthropic's own recorded streams replayed through the native path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiservice.errors import InvalidRequestError, UpstreamError
from aiservice.llm.wire.messages import to_chat_request, untranslatable
from aiservice.llm.wire.messages_events import EventWriter, message_from_events, sse_event
from aiservice.providers.anthropic_native import NATIVE_EVENTS, MessagesRequest, NativeEvents
from aiservice.providers.anthropic_native import native_body as native_upstream_body
from aiservice.providers.base import ProviderError
from tests.providers.fixtures.upstream import load_text, sse_data

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def events_of(chunks: list[dict[str, Any]], model: str = "public") -> list[dict[str, Any]]:
    writer = EventWriter(model, message_id="msg_test")
    events = [e for chunk in chunks for e in writer.feed(chunk)]
    return events + writer.close()


# -- request ------------------------------------------------------------------------------


def test_a_tool_conversation_becomes_the_chat_request() -> None:
    body = fixture("messages_request_tools.json")
    assert untranslatable(body) is None
    assert to_chat_request(body) == {
        "messages": [
            {"role": "system", "content": "You are a weather assistant.\n\nAnswer briefly."},
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {
                "role": "assistant",
                "content": "I'll check the weather.",  # the thinking block is dropped
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "San Francisco, CA"}',
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
                "content": "15 degrees",
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            },
        ],
        "max_tokens": 1024,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": body["tools"][0]["input_schema"],
                    "description": "Get the current weather in a given location",
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["\n\nHuman:"],
        "user": "user-123",
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": choice}
    assert to_chat_request(body)["tool_choice"] == expected


def test_an_error_tool_result_and_a_string_system() -> None:
    body = {
        "max_tokens": 5,
        "system": "Be terse.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "boom",
                        "is_error": True,
                    }
                ],
            }
        ],
    }
    assert to_chat_request(body)["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "tool", "tool_call_id": "t1", "content": "Error: boom"},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0]",
        ),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}], "system": [{"type": "image"}]},
            "system[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "some"}},
            "tool_choice.type",
        ),
    ],
)
def test_what_a_translated_deployment_cannot_express_is_a_400_naming_it(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_chat_request({"max_tokens": 5, **body})
    assert caught.value.param == param
    assert caught.value.message.startswith(param + ": ")


def test_lenient_translation_drops_what_it_cannot_express() -> None:
    body = {
        "max_tokens": 5,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {"type": "text", "text": "shot:"},
                            {"type": "image", "source": {"type": "base64"}},
                        ],
                    },
                    {"type": "document"},
                    {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                    {"type": "text", "text": "hi"},
                ],
            }
        ],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
    }
    assert to_chat_request(body, strict=False) == {
        "messages": [
            {"role": "tool", "tool_call_id": "t", "content": "shot:"},
            {"role": "user", "content": "hi"},
        ],
        "max_tokens": 5,
        "tools": [],
    }


def test_fields_only_a_native_deployment_honours() -> None:
    base = {"model": "m", "max_tokens": 5, "messages": [], "stream": True, "metadata": {}}
    assert untranslatable(base) is None
    assert untranslatable({**base, "top_k": 5}) == "top_k"
    assert (
        untranslatable({**base, "thinking": {"type": "enabled", "budget_tokens": 2000}})
        == "thinking"
    )
    assert untranslatable({**base, "top_k": None}) is None


# -- translated answers -------------------------------------------------------------------


def test_an_openai_stream_with_a_tool_call_becomes_anthropic_events() -> None:
    events = events_of(fixture("openai_stream_tool_call.json"))
    assert [e["type"] for e in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["id"] == "msg_test"
    assert events[0]["message"]["model"] == "public"
    assert events[5]["content_block"] == {
        "type": "tool_use",
        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        "name": "get_weather",
        "input": {},
    }
    assert [e["index"] for e in events if "index" in e] == [0, 0, 0, 1, 1, 1, 1]
    assert events[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"input_tokens": 18, "output_tokens": 17, "cache_read_input_tokens": 64},
    }
    message = message_from_events(events)
    assert message["content"] == [
        {"type": "text", "text": "Let me check."},
        {
            "type": "tool_use",
            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
            "name": "get_weather",
            "input": {"location": "Paris"},
        },
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {
        "input_tokens": 18,
        "output_tokens": 17,
        "cache_read_input_tokens": 64,
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_stop_reasons(finish: str, stop: str) -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": finish}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ]
    message = message_from_events(events_of(chunks))
    assert message["stop_reason"] == stop
    assert message["content"] == [{"type": "text", "text": "hi"}]
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 1}


def test_broken_tool_arguments_are_an_upstream_error() -> None:
    chunks = [
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c",
                                "function": {"name": "f", "arguments": "{not json"},
                            }
                        ]
                    },
                }
            ]
        },
    ]
    with pytest.raises(UpstreamError):
        message_from_events(events_of(chunks))


def test_sse_frames_name_the_event() -> None:
    assert sse_event({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'


# -- native answers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_use.sse"])
def test_a_recorded_anthropic_stream_passes_through_verbatim(name: str) -> None:
    recorded = sse_data(load_text(f"anthropic/{name}"))
    native = NativeEvents("anthropic", "claude-upstream")
    chunks = [chunk for event in recorded for chunk in native.feed(event)]
    native.finish()
    # Every event rides on some chunk, in order, once.
    assert [e for c in chunks for e in c.get(NATIVE_EVENTS, [])] == recorded
    # The chunks are still chat chunks, ending with the usage chunk (for accounting).
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    # A cache stores chunks as JSON: the replay is the same.
    chunks = json.loads(json.dumps(chunks))
    events = events_of(chunks, model="claude")
    expected = [dict(e) for e in recorded]
    expected[0] = {**recorded[0], "message": {**recorded[0]["message"], "model": "claude"}}
    assert events == expected


def test_a_recorded_tool_use_stream_builds_the_message_the_sdk_would() -> None:
    recorded = sse_data(load_text("anthropic/stream_tool_use.sse"))
    message = message_from_events(recorded)
    assert message["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert message["content"] == [
        {"type": "text", "text": "Okay, let's check the weather for San Francisco, CA:"},
        {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "fahrenheit"},
        },
    ]
    assert (message["stop_reason"], message["stop_sequence"]) == ("tool_use", None)
    assert message["usage"] == {"input_tokens": 472, "output_tokens": 89}


def test_thinking_and_signature_deltas_accumulate() -> None:
    events = [
        {
            "type": "message_start",
            "message": {"id": "m", "content": [], "usage": {"input_tokens": 1}},
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Let me "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "think."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQB"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 4},
        },
        {"type": "message_stop"},
    ]
    message = message_from_events(events)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "EqQB"}
    ]
    assert message["usage"] == {"input_tokens": 1, "output_tokens": 4}


def test_an_upstream_error_event_raises_with_its_status() -> None:
    native = NativeEvents("anthropic", "m")
    with pytest.raises(ProviderError) as caught:
        for event in sse_data(load_text("anthropic/stream_error.sse")):
            native.feed(event)
    assert caught.value.status == 529


def test_the_native_body_is_the_clients_with_the_upstream_model() -> None:
    client = {"model": "public", "max_tokens": 9, "top_k": 3, "stream": False, "messages": []}
    request = MessagesRequest({"messages": []}, client)
    assert native_upstream_body("claude-x", request, stream=True) == {
        "model": "claude-x",
        "max_tokens": 9,
        "top_k": 3,
        "messages": [],
        "stream": True,
    }
    assert "stream" not in native_upstream_body("claude-x", request, stream=False)
    assert dict(request) == {"messages": []}  # what every other provider reads
