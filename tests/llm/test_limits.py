"""Request bounds and text checks (aiservice.llm.limits), and the gateway applying them
to every provider when called directly (not through the HTTP edge)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from aiservice import Settings, get_runtime
from aiservice.config.sections import RequestLimits
from aiservice.errors import InvalidRequestError
from aiservice.llm import Gateway
from aiservice.llm.limits import check_chat, check_embeddings, find_unencodable, is_encodable
from tests.support.llm_servers import ENVIRON, Upstreams, llm_config

BAD = "lone \ud800 surrogate"


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"messages": [{"content": "ok"}, {"content": BAD}]}, "messages[1].content"),
        ({"tools": [{"function": {"name": BAD}}]}, "tools[0].function.name"),
        ({"a": {BAD: 1}}, "a"),
        ({"logprobs": [0.5, math.nan]}, "logprobs[1]"),
        ({"x": [math.inf]}, "x[0]"),
        ({"ok": "emoji \U0001f600 and accents é"}, None),
        ({"ok": [1, 2.5, None, True, "plain"]}, None),
    ],
)
def test_find_unencodable_names_the_path(value: Any, path: str | None) -> None:
    assert find_unencodable(value) == path
    assert is_encodable(value) is (path is None)


def test_nesting_deeper_than_64_is_unencodable_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = {"a": [deep]}
    assert not is_encodable(deep)
    assert find_unencodable(deep) is not None


def test_check_chat_rejects_surrogates_with_the_field_as_param() -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_chat({"messages": [{"role": "user", "content": BAD}]}, RequestLimits())
    assert info.value.param == "messages[0].content" and info.value.code == "invalid_text"
    assert info.value.status_code == 400


def test_check_embeddings_rejects_a_surrogate_input() -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_embeddings(["fine", BAD], None, RequestLimits())
    assert info.value.param == "input[1]"


def test_values_cap_counts_inputs_times_dimensions() -> None:
    limits = RequestLimits(max_embedding_values=100)
    check_embeddings(["a"] * 10, 10, limits)
    with pytest.raises(InvalidRequestError) as info:
        check_embeddings(["a"] * 11, 10, limits)
    assert info.value.param == "input" and "110" in info.value.message


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


@pytest.mark.parametrize("model", ["chat", "local/llama3.2", "fake"])
async def test_the_gateway_rejects_surrogates_for_every_provider_before_any_call(
    settings: Settings, client_for: Any, upstreams: Upstreams, model: str
) -> None:
    request = {"messages": [{"role": "user", "content": BAD}]}
    async with client_for(settings) as http:
        gateway: Gateway = get_runtime(http._transport.app).gateway
        for call in (
            lambda: gateway.chat(model, request, None),
            lambda: gateway.stream(model, request, None),
            lambda: gateway.embed(model, [BAD]),
        ):
            with pytest.raises(InvalidRequestError) as info:
                await call()
            assert info.value.status_code == 400
    assert sum(upstreams.primary.calls.values()) == 0
    assert sum(upstreams.ollama.calls.values()) == 0
