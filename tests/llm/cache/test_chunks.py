"""completion_to_chunks / chunks_to_completion: either form answers the other."""

from __future__ import annotations

import copy
from typing import Any

from aiservice.llm.cache.chunks import chunks_to_completion, completion_to_chunks

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 5, "model": "m"}


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {**HEAD, "choices": choices, **extra}


TOOL_STREAM = [
    chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]),
    chunk(
        [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "weather", "arguments": ""},
                        }
                    ]
                },
            }
        ]
    ),
    chunk(
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
            }
        ]
    ),
    chunk(
        [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "time", "arguments": "{}"},
                        }
                    ]
                },
            }
        ]
    ),
    chunk(
        [
            {
                "index": 0,
                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
            }
        ]
    ),
    chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    chunk([], usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
]


def test_streamed_tool_call_deltas_merge_into_one_message() -> None:
    original = copy.deepcopy(TOOL_STREAM)
    completion = chunks_to_completion(TOOL_STREAM)
    assert TOOL_STREAM == original  # pure: the chunks are not modified
    assert completion["object"] == "chat.completion"
    assert completion["id"] == "chatcmpl-1"
    [choice] = completion["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}},
    ]
    assert completion["usage"]["total_tokens"] == 7


def test_text_deltas_of_several_choices_concatenate_per_index() -> None:
    chunks = [
        chunk(
            [
                {"index": 0, "delta": {"role": "assistant", "content": "Hel"}},
                {"index": 1, "delta": {"role": "assistant", "content": "Bon"}},
            ]
        ),
        chunk([{"index": 1, "delta": {"content": "jour"}, "finish_reason": "stop"}]),
        chunk([{"index": 0, "delta": {"content": "lo"}, "finish_reason": "length"}]),
    ]
    completion = chunks_to_completion(chunks)
    assert [c["message"]["content"] for c in completion["choices"]] == ["Hello", "Bonjour"]
    assert [c["finish_reason"] for c in completion["choices"]] == ["length", "stop"]
    assert "usage" not in completion


def test_completion_round_trips_through_chunks() -> None:
    completion = chunks_to_completion(TOOL_STREAM)
    original = copy.deepcopy(completion)
    chunks = completion_to_chunks(completion)
    assert completion == original  # pure: the input is not modified
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == original["usage"]
    assert chunks_to_completion(chunks) == original


def test_text_completion_round_trips_with_refusal_and_fingerprint() -> None:
    completion = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "hi", "refusal": "no"},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    assert chunks_to_completion(completion_to_chunks(completion)) == completion
