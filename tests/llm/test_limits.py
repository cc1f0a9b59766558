"""Request bounds and text checks (aiservice.llm.limits), and the gateway applying them
to every provider when called directly (not through the HTTP edge)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from aiservice import Settings, get_runtime
from aiservice.config.sections import RequestLimits
from aiservice.errors import InvalidRequestError
from aiservice.llm import Gateway
from aiservice.llm.limits import (
    MAX_DEPTH,
    check_chat,
    check_embeddings,
    find_unencodable,
    is_encodable,
)
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


def _reference(value: Any, depth: int = 0) -> bool:
    """is_encodable as its definition reads (recursive; the values below are shallow)."""
    if isinstance(value, dict):
        return depth < MAX_DEPTH and all(
            _reference(k, depth + 1) and _reference(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return depth < MAX_DEPTH and all(_reference(v, depth + 1) for v in value)
    if isinstance(value, str):
        return value.isascii() or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    return not isinstance(value, float) or math.isfinite(value)


class _Str(str):
    pass


class _Float(float):
    pass


class _Dict(dict[Any, Any]):
    pass


class _List(list[Any]):
    pass


_LEAVES: list[Any] = [
    "plain", "é", BAD, _Str("x"), _Str(BAD), 1.5, math.nan, -math.inf, _Float(2.0),
    _Float("nan"), 0, True, None, b"bytes", object(),
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return rng.choice(_LEAVES)
    children = [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.55:
        return children
    if roll < 0.65:
        return tuple(children)
    if roll < 0.7:
        return _List(children)
    keys = rng.choices(["k", "é", BAD, _Str(BAD), 1, 2.5, math.inf, None, True], k=len(children))
    return (_Dict if roll < 0.75 else dict)(zip(keys, children, strict=True))


def test_is_encodable_agrees_with_its_definition() -> None:
    # The walk checks common types by exact type and the rest by isinstance: subclasses,
    # keys of every kind and tuples must come out as the plain definition says.
    rng = random.Random(7)
    values = [_value(rng) for _ in range(5_000)]
    assert [is_encodable(v) for v in values] == [_reference(v) for v in values]
    assert {is_encodable(v) for v in values} == {True, False}


@pytest.mark.parametrize("leaf", ["ok", [], {}, BAD])
@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_the_depth_bound_is_the_same_for_lists_and_objects(leaf: Any, depth: int) -> None:
    for wrap in (lambda v: [v], lambda v: {"a": v}, lambda v: (v,)):
        value = leaf
        for _ in range(depth):
            value = wrap(value)
        # Containers at depth 0..depth; the leaf's own depth counts when it is one.
        deepest = depth + (1 if isinstance(leaf, list | dict) else 0)
        assert is_encodable(value) is (deepest <= MAX_DEPTH and leaf != BAD)


def test_text_checked_requests_keep_their_bounds_and_skip_the_walk() -> None:
    limits = RequestLimits(max_messages=1)
    # The caller vouches for the text (a strictly parsed body): only the bounds are checked.
    check_chat({"messages": [{"role": "user", "content": BAD}]}, limits, text_checked=True)
    with pytest.raises(InvalidRequestError) as info:
        check_chat({"messages": [{}, {}]}, limits, text_checked=True)
    assert info.value.param == "messages"


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
