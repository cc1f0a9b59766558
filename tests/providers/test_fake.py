"""The fake provider: passes the provider contract and keeps its documented rules."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest

from aiservice.config import ProviderSettings, Settings
from aiservice.providers.fake import FakeProvider
from aiservice.secrets.base import SecretResolver
from tests.providers.contract import (
    WEATHER_TOOL,
    ProviderContract,
    ProviderHarness,
    collect,
    text_of,
)


def make_fake() -> FakeProvider:
    return FakeProvider("fake", ProviderSettings(type="fake"), SecretResolver(Settings()))


class TestFakeContract(ProviderContract):
    supports_embeddings = True
    supports_failures = False
    supports_stream_drop = False

    @pytest.fixture
    async def harness(self) -> AsyncIterator[ProviderHarness]:
        provider = make_fake()
        yield ProviderHarness(provider=provider, model="fake", embedding_model="fake")
        await provider.aclose()


def user(text: str) -> dict[str, object]:
    return {"role": "user", "content": text}


async def test_reply_is_the_last_user_message_and_is_deterministic() -> None:
    fake = make_fake()
    request = {"messages": [user("first"), {"role": "assistant", "content": "x"}, user("echo me")]}
    one = await fake.chat("fake", request)
    two = await fake.chat("fake", request)
    assert one["choices"][0]["message"]["content"] == "echo me"
    assert one == two


async def test_usage_counts_words() -> None:
    fake = make_fake()
    result = await fake.chat("fake", {"messages": [user("one two three")]})
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


async def test_named_tool_choice_picks_that_tool_with_schema_fitting_arguments() -> None:
    other = {
        "type": "function",
        "function": {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "nights": {"type": "integer"},
                    "class": {"enum": ["economy", "first"]},
                    "breakfast": {"type": "boolean"},
                },
                "required": ["city", "nights", "class", "breakfast"],
            },
        },
    }
    request = {
        "messages": [user("two nights Lisbon")],
        "tools": [WEATHER_TOOL, other],
        "tool_choice": {"type": "function", "function": {"name": "book"}},
    }
    result = await make_fake().chat("fake", request)
    call = result["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "book"
    assert json.loads(call["function"]["arguments"]) == {
        "city": "two nights Lisbon",
        "nights": 3,
        "class": "economy",
        "breakfast": True,
    }


async def test_tool_choice_none_answers_with_text() -> None:
    request = {"messages": [user("hi")], "tools": [WEATHER_TOOL], "tool_choice": "none"}
    result = await make_fake().chat("fake", request)
    assert result["choices"][0]["message"]["content"] == "hi"
    assert result["choices"][0]["finish_reason"] == "stop"


async def test_tool_result_is_acknowledged() -> None:
    request = {
        "messages": [user("q"), {"role": "tool", "tool_call_id": "c", "content": "sunny"}],
        "tools": [WEATHER_TOOL],
    }
    result = await make_fake().chat("fake", request)
    assert result["choices"][0]["message"]["content"] == "tool result: sunny"


async def test_json_modes_reply_valid_json() -> None:
    fake = make_fake()
    obj = await fake.chat(
        "fake", {"messages": [user("hello")], "response_format": {"type": "json_object"}}
    )
    assert json.loads(obj["choices"][0]["message"]["content"]) == {"reply": "hello"}
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "score": {"type": "number"}},
        "required": ["name", "score"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    result = await fake.chat("fake", {"messages": [user("a b")], "response_format": fmt})
    assert json.loads(result["choices"][0]["message"]["content"]) == {"name": "a b", "score": 2.0}


async def test_max_tokens_and_stop_cut_the_reply() -> None:
    fake = make_fake()
    cut = await fake.chat("fake", {"messages": [user("a b c d")], "max_tokens": 2})
    assert cut["choices"][0]["message"]["content"] == "a b"
    assert cut["choices"][0]["finish_reason"] == "length"
    stopped = await fake.chat("fake", {"messages": [user("a b. c d")], "stop": ["."]})
    assert stopped["choices"][0]["message"]["content"] == "a b"


async def test_n_returns_identical_choices() -> None:
    result = await make_fake().chat("fake", {"messages": [user("x y")], "n": 3})
    assert [c["index"] for c in result["choices"]] == [0, 1, 2]
    assert result["usage"]["completion_tokens"] == 6


async def test_stream_is_one_chunk_per_word() -> None:
    chunks = await collect(make_fake(), "fake", {"messages": [user("  alpha beta\ngamma ")]})
    contents = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert contents == ["  alpha ", "beta\n", "gamma "]
    assert text_of(chunks) == "  alpha beta\ngamma "


async def test_embeddings_are_deterministic_unit_vectors_of_requested_size() -> None:
    fake = make_fake()
    result = await fake.embed("fake", ["same", "other", "same"], dimensions=32)
    assert [len(v) for v in result.vectors] == [32, 32, 32]
    assert result.vectors[0] == result.vectors[2] != result.vectors[1]
    assert math.isclose(sum(x * x for x in result.vectors[1]), 1.0, rel_tol=1e-9)
    default = await fake.embed("fake", ["x"])
    assert len(default.vectors[0]) == 256
