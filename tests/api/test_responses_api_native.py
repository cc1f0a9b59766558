"""Deployments declaring ``responses_api: native`` pass /v1/responses through untranslated
to an OpenAI-wire loopback upstream serving /v1/responses: body and answer as sent (only
the model names change), streams event by event, fallback, accounting and key scoping
as on the translated path."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from aiservice import Settings
from aiservice.observability.metrics import REGISTRY
from aiservice.runtime import StartupError
from tests.conftest import app_client
from tests.providers.contract import Failure
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_responses import RESPONSE, ResponsesUpstream

KEY = "client-key-native-0001"
OTHER = "client-key-native-0002"
UPSTREAM_ID = json.loads(RESPONSE)["id"]

first_server, first = upstream_fixtures(ResponsesUpstream, name="first")
second_server, second = upstream_fixtures(ResponsesUpstream, name="second")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(
    first_server: tuple[ResponsesUpstream, str], second_server: tuple[ResponsesUpstream, str]
) -> Settings:
    def provider(url: str) -> dict[str, Any]:
        return {"type": "openai", "base_url": url + "/v1", "api_key": "sk-up", "max_retries": 0}

    return Settings(
        providers={"a": provider(first_server[1]), "b": provider(second_server[1])},
        models={
            "native": [
                {"provider": "a", "model": "gpt-4.1", "responses_api": "native"},
                {"provider": "b", "model": "gpt-4.1-b", "responses_api": "native"},
            ],
            "translated": [{"provider": "a", "model": "gpt-test"}],
        },
        auth={"api_keys": [KEY, OTHER]},
        pricing={"gpt-4.1": {"input": 1.0, "output": 1.0}},
    )


@pytest.fixture
async def sdk(settings: Settings, client_for: Any) -> Any:
    async with client_for(settings) as http:
        yield openai.AsyncOpenAI(
            base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
        )


async def test_the_body_and_the_answer_pass_through_untranslated(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream
) -> None:
    tools: Any = [{"type": "web_search_preview"}]
    tokens = sample("aiservice_llm_tokens_total", provider="a", model="gpt-4.1", type="input")
    raw = await sdk.responses.with_raw_response.create(
        model="native",
        input="positive news today",
        tools=tools,
        include=["reasoning.encrypted_content"],
    )
    response = raw.parse()
    sent = first.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body == {
        "model": "gpt-4.1",
        "input": "positive news today",
        "tools": [{"type": "web_search_preview"}],
        "include": ["reasoning.encrypted_content"],
        "stream": False,
    }
    # What no translation could produce: the hosted tool's call and the citation.
    assert [item.type for item in response.output] == ["web_search_call", "message"]
    assert response.output[1].content[0].annotations[0].type == "url_citation"
    assert response.id == UPSTREAM_ID and response.model == "native"
    assert raw.headers["x-aiservice-provider"] == "a"
    assert raw.headers["x-aiservice-model"] == "gpt-4.1"
    assert raw.headers["x-aiservice-cache"] == "bypass"
    after = sample("aiservice_llm_tokens_total", provider="a", model="gpt-4.1", type="input")
    assert after == tokens + 328  # accounted from the upstream's usage


async def test_streams_pass_through_event_by_event(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream
) -> None:
    stream = await sdk.responses.create(model="native", input="news", stream=True)
    events = [event async for event in stream]
    assert first.requests[-1].body["stream"] is True
    assert [e.sequence_number for e in events] == list(range(10))
    assert events[-1].type == "response.completed"
    assert events[-1].response.model == events[0].response.model == "native"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text


async def test_a_stream_cut_midway_ends_with_an_error_event(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream, second: ResponsesUpstream
) -> None:
    first.inject(Failure(kind="drop"))
    stream = await sdk.responses.create(model="native", input="news", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events[:3]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]
    assert events[-1].type == "error" and events[-1].sequence_number == 3
    assert second.calls["/v1/responses"] == 0  # no fallback after the first event


async def test_fallback_to_the_next_native_deployment(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream, second: ResponsesUpstream
) -> None:
    first.inject(Failure(status=503))
    before = sample("aiservice_llm_fallbacks_total", model="native", provider="a")
    raw = await sdk.responses.with_raw_response.create(model="native", input="hi")
    stream = await sdk.responses.with_raw_response.create(model="native", input="hi", stream=True)
    events = [event async for event in stream.parse()]
    assert raw.headers["x-aiservice-provider"] == stream.headers["x-aiservice-provider"] == "b"
    assert second.requests[-1].body["model"] == "gpt-4.1-b"
    assert events[-1].type == "response.completed"
    assert sample("aiservice_llm_fallbacks_total", model="native", provider="a") == before + 2


async def test_previous_response_id_passes_through_for_the_key_that_stored_it(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream
) -> None:
    created = await sdk.responses.create(model="native", input="news")
    again = await sdk.responses.create(
        model="native", input="more", previous_response_id=created.id
    )
    assert first.requests[-1].body["previous_response_id"] == UPSTREAM_ID
    assert (await sdk.responses.retrieve(created.id)).output_text == again.output_text
    stranger = sdk.with_options(api_key=OTHER)
    with pytest.raises(openai.NotFoundError):  # another key never reaches the upstream
        await stranger.responses.create(model="native", input="x", previous_response_id=created.id)
    assert len(first.requests) == 2


async def test_a_translated_conversation_continues_natively_as_items(
    sdk: openai.AsyncOpenAI, first: ResponsesUpstream
) -> None:
    translated = await sdk.responses.create(model="translated", input="hello")
    await sdk.responses.create(model="native", input="next", previous_response_id=translated.id)
    sent = first.requests[-1].body
    assert "previous_response_id" not in sent  # the upstream never saw that response
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "echo: hello", "annotations": [], "logprobs": []}
            ],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "next"}]},
    ]


async def test_native_on_a_provider_without_the_responses_api_is_refused_at_startup() -> None:
    settings = Settings(
        providers={"f": {"type": "fake"}},
        models={"m": [{"provider": "f", "model": "fake", "responses_api": "native"}]},
    )
    with pytest.raises(StartupError, match=r"models\.m\[0\]\.responses_api"):
        async with app_client(settings):
            pass
