"""The provider contract: one reusable test suite that every provider's tests subclass.

Every provider (fake, openai, ollama, anthropic, gemini, bedrock, third-party ones) must
behave the same at the :class:`~aiservice.providers.base.Provider` boundary: OpenAI-shaped
completions and chunks, a final usage chunk on every stream, tool calls with JSON
arguments, one vector per embedding input, and :class:`ProviderError` with the right
``status`` / ``kind`` / ``retry_after`` for every upstream failure, never containing the
credential.

How to subclass (``tests/providers/test_<name>.py``)::

    from tests.providers.contract import Failure, ProviderContract, ProviderHarness

    class TestMyProvider(ProviderContract):
        supports_embeddings = True     # False: the embedding tests are skipped by flag
        supports_failures = True       # harness.inject works (status codes, slow answers)
        supports_stream_drop = True    # harness.inject(Failure(kind="drop")) works

        @pytest.fixture
        async def harness(self) -> AsyncIterator[ProviderHarness]:
            # Start a real local server speaking the provider's wire format (see
            # tests/support/upstream_openai.py), build the provider against it with a short
            # ``timeout`` (about 1 s) and a literal or ``secret://`` api key, and yield:
            yield ProviderHarness(provider=..., model="m", embedding_model="e",
                                  secret="sk-test-...", inject=upstream.inject,
                                  unreachable=<same provider type aimed at a closed port>)
            await provider.aclose()

What the upstream behind the harness must do (the test servers in tests/support do it):

* answer a chat with text that **contains the last user message** (echo), with usage;
* when the request carries ``tools``, answer with a call to the first tool whose arguments
  are a JSON object (streamed too);
* embeddings: one vector per input;
* ``inject(Failure(status=S, retry_after=R, message=M))``: answer every following request
  with HTTP ``S`` (``Retry-After: R`` if given) and an error body whose message is ``M``;
  ``Failure(kind="slow")``: answer later than the provider's timeout;
  ``Failure(kind="drop")``: start a stream, send a couple of chunks, then cut the
  connection; ``inject(None)``: back to normal.

Flags that are False turn the matching tests into checks of the flag's meaning (no
inject hook, no embedding model, a complete normal stream) instead of skipping them, so a
provider states its capabilities explicitly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import pytest

from aiservice.providers.base import ChatChunk, Provider, ProviderError
from tests.support.servers import free_port

__all__ = [
    "Failure",
    "ProviderContract",
    "ProviderHarness",
    "collect",
    "provider_pair",
    "text_of",
]

P = TypeVar("P", bound=Provider)


@dataclass(frozen=True)
class Failure:
    """A failure mode for the upstream behind a harness."""

    status: int = 500
    retry_after: float | None = None
    message: str = "simulated upstream failure"
    kind: Literal["status", "slow", "drop"] = "status"


@dataclass
class ProviderHarness:
    """What a subclass's ``harness`` fixture yields."""

    provider: Provider
    model: str
    embedding_model: str | None = None
    secret: str | None = None
    """The credential in use: it must never appear in any error message."""
    inject: Callable[[Failure | None], None] | None = None
    unreachable: Provider | None = None
    """The same provider type aimed at a port where nothing listens."""


@asynccontextmanager
async def provider_pair(make: Callable[[str], P], base_url: str) -> AsyncIterator[tuple[P, P]]:
    """``make(base_url)`` and ``make(<a closed port's URL>)``, the harness's ``provider`` and
    ``unreachable``; both are closed on exit."""
    provider = make(base_url)
    unreachable = make(f"http://127.0.0.1:{free_port()}")
    try:
        yield provider, unreachable
    finally:
        await provider.aclose()
        await unreachable.aclose()


async def collect(provider: Provider, model: str, request: dict[str, Any]) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream_chat(model, request)]


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(
        (choice.get("delta") or {}).get("content") or ""
        for chunk in chunks
        for choice in chunk.get("choices", [])
    )


def _assembled_tool_calls(chunks: list[ChatChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices", []):
            for delta in (choice.get("delta") or {}).get("tool_calls") or []:
                call = calls.setdefault(delta.get("index", 0), {"name": "", "arguments": ""})
                function = delta.get("function") or {}
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
    return calls


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


class ProviderContract:
    """Behaviour every provider must show. Subclasses provide the ``harness`` fixture."""

    supports_embeddings: ClassVar[bool] = True
    supports_failures: ClassVar[bool] = True
    supports_stream_drop: ClassVar[bool] = True

    # -- chat ---------------------------------------------------------------------------

    async def test_chat_returns_completion_with_reply_and_usage(
        self, harness: ProviderHarness
    ) -> None:
        request = {"messages": [{"role": "system", "content": "Be brief."}, _user("ping 42")]}
        result = await harness.provider.chat(harness.model, request)
        assert result["object"] == "chat.completion"
        assert result["id"]
        choice = result["choices"][0]
        assert choice["message"]["role"] == "assistant"
        assert "ping 42" in choice["message"]["content"]
        assert choice["finish_reason"] == "stop"
        usage = result["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    async def test_chat_sends_the_whole_history(self, harness: ProviderHarness) -> None:
        request = {
            "messages": [
                {"role": "system", "content": "sys"},
                _user("first question"),
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": [{"type": "text", "text": "second question"}]},
            ]
        }
        result = await harness.provider.chat(harness.model, request)
        assert "second question" in result["choices"][0]["message"]["content"]

    async def test_stream_deltas_concatenate_and_end_with_usage_chunk(
        self, harness: ProviderHarness
    ) -> None:
        chunks = await collect(harness.provider, harness.model, {"messages": [_user("stream me")]})
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert "stream me" in text_of(chunks)
        finishes = [
            ch["finish_reason"] for c in chunks for ch in c["choices"] if ch.get("finish_reason")
        ]
        assert finishes == ["stop"]
        last = chunks[-1]
        assert last["choices"] == []
        assert last["usage"]["completion_tokens"] > 0
        assert last["usage"]["prompt_tokens"] > 0
        assert all(not c.get("usage") for c in chunks[:-1])

    async def test_tool_call_has_name_and_json_object_arguments(
        self, harness: ProviderHarness
    ) -> None:
        request = {"messages": [_user("weather in Lisbon?")], "tools": [WEATHER_TOOL]}
        result = await harness.provider.chat(harness.model, request)
        choice = result["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["id"] and call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert isinstance(json.loads(call["function"]["arguments"]), dict)

    async def test_streamed_tool_call_assembles_to_valid_json(
        self, harness: ProviderHarness
    ) -> None:
        request = {"messages": [_user("weather in Porto?")], "tools": [WEATHER_TOOL]}
        chunks = await collect(harness.provider, harness.model, request)
        calls = _assembled_tool_calls(chunks)
        assert calls[0]["name"] == "get_weather"
        assert isinstance(json.loads(calls[0]["arguments"]), dict)
        finishes = [ch.get("finish_reason") for c in chunks for ch in c["choices"]]
        assert "tool_calls" in finishes
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0

    async def test_tool_result_history_is_accepted(self, harness: ProviderHarness) -> None:
        request = {
            "messages": [
                _user("weather in Lisbon?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24C"},
            ]
        }
        result = await harness.provider.chat(harness.model, request)
        assert isinstance(result["choices"][0]["message"]["content"], str)
        assert result["usage"]["prompt_tokens"] > 0

    # -- embeddings and models ----------------------------------------------------------

    async def test_embed_returns_one_vector_per_input(self, harness: ProviderHarness) -> None:
        if not self.supports_embeddings:
            assert harness.embedding_model is None
            return
        assert harness.embedding_model is not None
        result = await harness.provider.embed(harness.embedding_model, ["alpha", "beta", "gamma"])
        assert len(result.vectors) == 3
        assert len({len(v) for v in result.vectors}) == 1 and len(result.vectors[0]) > 0
        assert all(isinstance(x, float) for x in result.vectors[0])
        assert result.vectors[0] != result.vectors[1]
        assert result.input_tokens >= 0

    async def test_list_models_returns_names(self, harness: ProviderHarness) -> None:
        names = await harness.provider.list_models()
        assert names and all(isinstance(n, str) and n for n in names)

    async def test_probe_answers_with_a_short_detail(self, harness: ProviderHarness) -> None:
        detail = await harness.provider.probe()
        assert isinstance(detail, str) and detail and "\n" not in detail

    async def test_probe_reports_a_rejected_key_or_unreachable_upstream(
        self, harness: ProviderHarness
    ) -> None:
        if not self.supports_failures:
            assert harness.inject is None and harness.unreachable is None
            return
        assert harness.inject is not None and harness.unreachable is not None
        harness.inject(Failure(status=401, message="invalid x-api-key"))
        with pytest.raises(ProviderError) as info:
            await harness.provider.probe()
        harness.inject(None)
        assert info.value.kind == "auth" and info.value.status == 401
        with pytest.raises(ProviderError) as info:
            await harness.unreachable.probe()
        assert info.value.kind == "connect"

    async def test_aclose_twice_is_harmless(self, harness: ProviderHarness) -> None:
        await harness.provider.aclose()
        await harness.provider.aclose()

    # -- text that is not valid Unicode ---------------------------------------------------

    async def test_lone_surrogates_in_a_request_raise_nothing_but_provider_errors(
        self, harness: ProviderHarness
    ) -> None:
        """A lone UTF-16 surrogate cannot be encoded as UTF-8: a provider sends it escaped
        (or not at all) and either answers or raises :class:`ProviderError`, for chat,
        streams and embeddings alike, never an encoding error out of its own code."""
        request = {"messages": [_user("bad \ud800 text")], "tools": [WEATHER_TOOL]}
        outcomes: list[str] = []
        for call in (
            lambda: harness.provider.chat(harness.model, request),
            lambda: collect(harness.provider, harness.model, {"messages": request["messages"]}),
        ):
            try:
                await call()
                outcomes.append("answered")
            except ProviderError:
                outcomes.append("provider error")
        if self.supports_embeddings:
            assert harness.embedding_model is not None
            try:
                await harness.provider.embed(harness.embedding_model, ["\udfff alone"])
                outcomes.append("answered")
            except ProviderError:
                outcomes.append("provider error")
        assert len(outcomes) == (3 if self.supports_embeddings else 2)

    # -- failures -----------------------------------------------------------------------

    async def _failure(self, harness: ProviderHarness, failure: Failure) -> ProviderError:
        assert harness.inject is not None
        harness.inject(failure)
        with pytest.raises(ProviderError) as info:
            await harness.provider.chat(harness.model, {"messages": [_user("hi")]})
        harness.inject(None)
        return info.value

    async def test_rate_limit_is_retryable_and_carries_retry_after(
        self, harness: ProviderHarness
    ) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        error = await self._failure(harness, Failure(status=429, retry_after=7))
        assert error.status == 429 and error.retryable and error.allows_fallback
        assert error.retry_after == pytest.approx(7, abs=1)

    async def test_server_error_is_retryable(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        error = await self._failure(harness, Failure(status=503))
        assert error.status == 503 and error.retryable and error.allows_fallback

    async def test_client_error_is_final(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        error = await self._failure(harness, Failure(status=400, message="bad field xyz"))
        assert error.status == 400
        assert not error.retryable and not error.allows_fallback
        assert "bad field xyz" in error.message

    async def test_auth_error_never_contains_the_key(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        assert harness.secret
        message = f"Incorrect API key provided: {harness.secret}"
        error = await self._failure(harness, Failure(status=401, message=message))
        assert error.kind == "auth" and error.status == 401
        assert harness.secret not in str(error) and harness.secret not in repr(error.args)

    async def test_slow_upstream_is_a_timeout(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        error = await self._failure(harness, Failure(kind="slow"))
        assert error.kind == "timeout" and error.retryable

    async def test_unreachable_upstream_is_a_connect_error(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.unreachable is None
            return
        assert harness.unreachable is not None
        with pytest.raises(ProviderError) as info:
            await harness.unreachable.chat(harness.model, {"messages": [_user("hi")]})
        assert info.value.kind == "connect" and info.value.retryable

    async def test_stream_failure_before_first_chunk_raises(self, harness: ProviderHarness) -> None:
        if not self.supports_failures:
            assert harness.inject is None
            return
        assert harness.inject is not None
        harness.inject(Failure(status=500))
        received: list[ChatChunk] = []
        with pytest.raises(ProviderError) as info:
            async for chunk in harness.provider.stream_chat(
                harness.model, {"messages": [_user("hi")]}
            ):
                received.append(chunk)
        harness.inject(None)
        assert received == [] and info.value.status == 500

    async def test_stream_cut_midway_raises_instead_of_ending(
        self, harness: ProviderHarness
    ) -> None:
        if not self.supports_stream_drop:  # then at least: a normal stream is complete
            chunks = await collect(harness.provider, harness.model, {"messages": [_user("x")]})
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]
            return
        assert harness.inject is not None
        harness.inject(Failure(kind="drop"))
        received: list[ChatChunk] = []
        with pytest.raises(ProviderError):
            async for chunk in harness.provider.stream_chat(
                harness.model, {"messages": [_user("a long answer please")]}
            ):
                received.append(chunk)
        harness.inject(None)
        assert not any(c["choices"] == [] for c in received), "no usage chunk after a cut"
