"""The openai provider against a real local OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiservice.config import ProviderSettings, Settings
from aiservice.providers.base import ProviderError
from aiservice.providers.openai import OpenAIProvider, from_upstream, to_upstream
from aiservice.secrets.base import SecretResolver
from tests.providers.contract import (
    ProviderContract,
    ProviderHarness,
    collect,
    provider_pair,
    text_of,
)
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_openai import OpenAIUpstream

SECRET = "sk-test-0123456789abcdef"


upstream_server, upstream = upstream_fixtures(OpenAIUpstream)


def make_provider(base_url: str, **config: object) -> OpenAIProvider:
    settings = ProviderSettings(
        type="openai", base_url=base_url, api_key=SECRET, timeout=2.0, **config
    )
    return OpenAIProvider("openai", settings, SecretResolver(Settings()))


class TestOpenAIContract(ProviderContract):
    @pytest.fixture
    async def harness(
        self, upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str]
    ) -> AsyncIterator[ProviderHarness]:
        def make(url: str) -> OpenAIProvider:
            return make_provider(url + "/v1")

        async with provider_pair(make, upstream_server[1]) as (provider, unreachable):
            yield ProviderHarness(
                provider=provider,
                model="gpt-test",
                embedding_model="embed-test",
                secret=SECRET,
                inject=upstream.inject,
                unreachable=unreachable,
            )


def test_to_upstream_sets_model_and_asks_for_stream_usage() -> None:
    body = to_upstream("gpt-x", {"messages": [], "temperature": None, "seed": 3}, stream=True)
    assert body == {
        "messages": [],
        "seed": 3,
        "model": "gpt-x",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_from_upstream_estimates_usage_when_server_reports_none() -> None:
    data = {"id": "x", "choices": [{"index": 0, "message": {"content": "12345678"}}]}
    result = from_upstream(data, {"messages": [{"role": "user", "content": "abcd"}]}, "p")
    assert result["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_from_upstream_rejects_a_body_without_choices() -> None:
    with pytest.raises(ProviderError) as info:
        from_upstream({"nope": 1}, {"messages": []}, "p")
    assert info.value.kind == "protocol"


async def test_sends_bearer_key_and_model(
    upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str]
) -> None:
    provider = make_provider(upstream_server[1] + "/v1")
    await provider.chat("gpt-test", {"messages": [{"role": "user", "content": "hi"}]})
    seen = upstream.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.body["model"] == "gpt-test"
    await provider.aclose()


async def test_azure_style_api_version_uses_query_and_api_key_header(
    upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str]
) -> None:
    provider = make_provider(upstream_server[1] + "/v1", api_version="2024-10-21")
    await provider.chat("gpt-test", {"messages": [{"role": "user", "content": "hi"}]})
    seen = upstream.requests[-1]
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == SECRET and "authorization" not in seen.headers
    await provider.aclose()


async def test_secret_reference_key_is_resolved_per_request(
    upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str], make_settings: object
) -> None:
    settings = make_settings({}, {"UP_KEY": "sk-from-env-1234"})  # type: ignore[operator]
    config = ProviderSettings(
        type="openai", base_url=upstream_server[1] + "/v1", api_key="secret://env/UP_KEY"
    )
    provider = OpenAIProvider("openai", config, SecretResolver(settings))
    await provider.list_models()
    assert upstream.requests[-1].headers["authorization"] == "Bearer sk-from-env-1234"
    await provider.aclose()


async def test_custom_headers_are_sent(
    upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str]
) -> None:
    provider = make_provider(upstream_server[1] + "/v1", headers={"x-team": "ml"})
    await provider.embed("embed-test", ["a"], dimensions=4)
    seen = upstream.requests[-1]
    assert seen.headers["x-team"] == "ml" and seen.body["dimensions"] == 4
    await provider.aclose()


async def test_stream_without_upstream_usage_gets_an_estimated_usage_chunk(
    upstream: OpenAIUpstream, upstream_server: tuple[OpenAIUpstream, str]
) -> None:
    """Servers that ignore stream_options still give accounting a usage chunk."""
    provider = make_provider(upstream_server[1] + "/v1")
    original = to_upstream
    import aiservice.providers.openai as module

    def no_usage(model: str, request: dict[str, object], *, stream: bool) -> dict[str, object]:
        body = original(model, request, stream=stream)
        body.pop("stream_options", None)
        return body

    module.to_upstream = no_usage  # type: ignore[assignment]
    try:
        chunks = await collect(
            provider, "gpt-test", {"messages": [{"role": "user", "content": "abc"}]}
        )
    finally:
        module.to_upstream = original
    assert text_of(chunks) == "echo: abc"
    assert chunks[-1]["usage"]["completion_tokens"] == 3  # "echo: abc" = 9 chars
    await provider.aclose()


def test_stream_chunks_are_forwarded_without_usage_and_with_their_object() -> None:
    from aiservice.providers.openai import _StreamState

    state = _StreamState()
    first = {"id": "c1", "model": "m", "usage": None, "choices": [{"delta": {"content": "a"}}]}
    assert state.take(first) == {
        "id": "c1",
        "model": "m",
        "choices": [{"delta": {"content": "a"}}],
        "object": "chat.completion.chunk",
    }
    last = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    assert state.take(last) == {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"delta": {}, "finish_reason": "stop"}],
    }
    assert state.finished and state.take({"id": "c1", "choices": []}) is None
    assert state.usage_chunk({})["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "total_tokens": 2,
    }


@pytest.mark.parametrize(
    "lines",
    [
        ['data: {"id":"c1","choices":[{"delta":{"content":"hi"}}]}', "", "data: [DONE]"],
        ['data: {"id":"c1","choices":[{"delta":{"content":"hi"}}]}', "", " ", "data: [DONE]", ""],
        ['data: {"id":"c1","choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}'],
    ],
)
async def test_a_stream_ending_without_a_blank_line_still_ends(lines: list[str]) -> None:
    """The last event is taken at the end of the stream, [DONE] or a finished choice."""
    provider = make_provider("http://127.0.0.1:9/v1")

    async def fake_lines(path: str, **_: object) -> AsyncIterator[list[str]]:
        for line in lines:
            yield [line]

    provider._client.lines = fake_lines  # type: ignore[method-assign, assignment]
    chunks = await collect(provider, "gpt-test", {"messages": [{"role": "user", "content": "x"}]})
    assert text_of(chunks) == "hi" and "usage" in chunks[-1]
    await provider.aclose()


@pytest.mark.parametrize(
    ("text", "verbatim"),
    [
        (
            '{"id":"c1","object":"chat.completion.chunk","choices":[{"delta":{"content":"a"}}]}',
            True,
        ),
        ('{"id":"c1","object":"x","choices":[{"delta":{}}],"usage":null}', True),  # null: popped
        ('{"id":"c1","choices":[{"delta":{"content":"a"}}]}', False),  # gets its object
        ('{"id":"c1","object":"x","choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}', False),
        ('{"id":"c1","object":"x","choices":[{"delta":{}, "logprobs": 1e999}]}', False),
        ('{"id":"c1","object":"x","choices":[{"delta":{}, "logprobs": NaN}]}', False),
        ('{"id":"c1","object":"x","choices":[{"delta":{}, "logprobs": 0.5}]} ', False),
    ],
)
async def test_the_batch_stream_gives_a_chunks_text_only_when_it_is_the_chunk(
    text: str, verbatim: bool
) -> None:
    provider = make_provider("http://127.0.0.1:9/v1")

    async def fake_lines(path: str, **_: object) -> AsyncIterator[list[str]]:
        yield ["data: " + text, "", "data: [DONE]", ""]

    provider._client.lines = fake_lines  # type: ignore[method-assign, assignment]
    batches = [b async for b in provider.stream_chat_wire("m", {"messages": []})]
    (chunk, got), usage = batches[0][0], batches[-1][0]
    assert got == (text if verbatim else None)
    assert "usage" not in chunk and chunk["object"] and usage[1] is None
    await provider.aclose()


def test_loads_finite_takes_what_loads_takes_with_finite_numbers_only() -> None:
    from aiservice.providers.http import NotFinite, loads, loads_finite

    for text in ('{"a":[1,2.5,-0.0,1e-5,123456789012345678901234567890]}', '"x"', "[]"):
        assert loads_finite(text) == loads(text)
    for bad in ("NaN", "[Infinity]", '{"a":-Infinity}', "1e999", "[-1e400]"):
        with pytest.raises(NotFinite):
            loads_finite(bad)
    for other in (" {}", "{} ", "{} {}", "{", ""):  # loads decides (value or error)
        with pytest.raises(ValueError):
            loads_finite(other)


async def test_an_event_the_streams_end_cut_short_is_not_passed_on_as_text() -> None:
    """Taken at the end of the stream (no blank line after it): parsed the general way,
    so its text is not vouched for (it could hold a NaN)."""
    provider = make_provider("http://127.0.0.1:9/v1")
    text = '{"id":"c1","object":"x","choices":[{"delta":{},"finish_reason":"stop"}]}'

    async def fake_lines(path: str, **_: object) -> AsyncIterator[list[str]]:
        yield ["data: " + text]

    provider._client.lines = fake_lines  # type: ignore[method-assign, assignment]
    batches = [b async for b in provider.stream_chat_wire("m", {"messages": []})]
    assert [item[1] for batch in batches for item in batch] == [None, None]
    await provider.aclose()


async def test_the_first_chunk_goes_on_before_the_rest_of_its_read_is_parsed() -> None:
    """A read holding a whole answer: the first event is yielded alone, so a client's
    first token does not wait for the rest of the read to be parsed."""
    provider = make_provider("http://127.0.0.1:9/v1")
    text = '{"id":"c1","object":"x","choices":[{"delta":{"content":"N"}}]}'.replace
    events = [f"data: {text('N', str(n))}" for n in range(5)]

    async def fake_lines(path: str, **_: object) -> AsyncIterator[list[str]]:
        yield [line for event in events for line in (event, "")] + ["data: [DONE]", ""]

    provider._client.lines = fake_lines  # type: ignore[method-assign, assignment]
    batches = [b async for b in provider.stream_chat_wire("m", {"messages": []})]
    assert [len(b) for b in batches] == [1, 4, 1]  # the first, the rest of its read, usage
    assert [t for b in batches[:2] for _, t in b] == [text("N", str(n)) for n in range(5)]
    await provider.aclose()


@pytest.mark.parametrize(
    "number",
    ["123456789012345678901234567890", "-9223372036854775809", "18446744073709551616", "1e300"],
)
async def test_stream_chunks_hold_exactly_the_numbers_json_gives(number: str) -> None:
    """Events are parsed by orjson where it gives json.loads' value; an integer beyond 64
    bits (which orjson would turn into a float) keeps every digit."""
    import json

    provider = make_provider("http://127.0.0.1:9/v1")
    texts = [
        '{"id":"c1","object":"x","choices":[{"delta":{"content":"a"}}]}',
        '{"id":"c1","object":"x","choices":[{"delta":{"content":"b"}, "n": NUMBER}]}'.replace(
            "NUMBER", number
        ),
    ]

    async def fake_lines(path: str, **_: object) -> AsyncIterator[list[str]]:
        yield [line for t in texts for line in ("data: " + t, "")] + ["data: [DONE]", ""]

    provider._client.lines = fake_lines  # type: ignore[method-assign, assignment]
    batches = [b async for b in provider.stream_chat_wire("m", {"messages": []})]
    chunks = [c for b in batches[:-1] for c, _ in b]
    assert chunks == [json.loads(t) for t in texts]
    assert type(chunks[1]["choices"][0]["n"]) is type(json.loads(number))
    await provider.aclose()


def test_exact_loads_gives_what_loads_finite_gives() -> None:
    from aiservice.providers.http import NotFinite, exact_loads, loads_finite

    texts = ['{"a":[1,2.5,-0.0,1e-5,922337203685477580,-922337203685477580]}', '"é\\u00e9"']
    fast = exact_loads(texts)
    assert fast is not loads_finite and [fast(t) for t in texts] == [loads_finite(t) for t in texts]
    assert exact_loads(['{"a":1234567890123456789}']) is loads_finite  # 19 digits in a row
    for bad in ("NaN", "[Infinity]", "1e999", "{", '"\\ud800"'):  # the caller's slow path
        with pytest.raises((ValueError, NotFinite)):
            fast(bad)
