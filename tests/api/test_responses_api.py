"""/v1/responses through the official openai SDK, unmodified, in-process: the fake model
and the OpenAI-compatible loopback upstreams (primary, backup) of tests/support."""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from aiservice import Settings
from aiservice.observability.metrics import REGISTRY
from tests.providers.contract import Failure
from tests.support.llm_servers import CLIENT_KEY, ENVIRON, SdkFactory, Upstreams, llm_config

OTHER_KEY = "client-key-00000002"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class City(BaseModel):
    name: str
    population: int


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    config = llm_config(upstreams)
    config["auth"]["api_keys"].append(OTHER_KEY)
    settings: Settings = make_settings(config, ENVIRON)
    return settings


async def test_create_with_the_fake_model(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.responses.with_raw_response.create(model="fake", input="hi")
    response = raw.parse()
    assert response.output_text == "hi"
    assert response.status == "completed" and response.model == "fake"
    assert response.id.startswith("resp_") and response.store is True
    assert response.usage is not None and response.usage.total_tokens == 2
    assert raw.headers["x-aiservice-provider"] == "offline"
    assert raw.headers["x-aiservice-model"] == "fake"
    assert raw.headers["x-aiservice-cache"] == "bypass"  # cache mode off in this config


async def test_streamed_events_until_response_completed(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, _):
        stream = await sdk.responses.create(model="fake", input="one two three", stream=True)
        events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = events[-1].response
    assert deltas == completed.output_text == "one two three"
    assert completed.usage is not None and completed.usage.output_tokens == 3
    assert events[0].response.id == completed.id


async def test_stream_helper_assembles_a_function_call(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, _):
        async with sdk.responses.stream(model="fake", input="Oslo", tools=[WEATHER]) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}


async def test_function_tool_round_trip(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        first = await sdk.responses.create(model="fake", input="Paris", tools=[WEATHER])
        call = first.output[0]
        assert call.type == "function_call"
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        # Continued from the stored response...
        stored = await sdk.responses.create(
            model="fake", previous_response_id=first.id, tools=[WEATHER], input=[output]
        )
        # ...and stateless, the client sending the whole conversation.
        history: list[Any] = [{"role": "user", "content": "Paris"}, call.model_dump(), output]
        stateless = await sdk.responses.create(
            model="fake", input=history, tools=[WEATHER], store=False
        )
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert stored.output_text == stateless.output_text == "tool result: sunny"
    assert stored.previous_response_id == first.id and stateless.store is False


async def test_previous_response_id_sends_the_conversation_upstream(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    async with sdk_for(settings) as (sdk, _):
        first = await sdk.responses.create(model="solo", input="hello", instructions="Be nice.")
        second = await sdk.responses.create(
            model="solo", input="and again", previous_response_id=first.id
        )
        page = await sdk.responses.input_items.list(second.id)
        oldest_first = await sdk.responses.input_items.list(second.id, order="asc", limit=1)
    assert first.output_text == "echo: hello"
    assert second.output_text == "echo: and again"
    # A response's own input only, newest first by default (as at OpenAI).
    assert [item.content[0].text for item in page.data] == ["and again"]
    assert oldest_first.data[0].id == page.data[0].id and oldest_first.has_more is False
    sent = upstreams.primary.requests[-1].body["messages"]
    # Instructions are not carried over (as at OpenAI): only the conversation is.
    assert sent == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "echo: hello"},
        {"role": "user", "content": "and again"},
    ]


async def test_stored_responses_belong_to_the_key_that_created_them(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (sdk, http):
        created = await sdk.responses.create(model="fake", input="mine")
        fetched = await sdk.responses.retrieve(created.id)
        other = {"authorization": f"Bearer {OTHER_KEY}"}
        stranger = await http.get(f"/v1/responses/{created.id}", headers=other)
        continued = await http.post(
            "/v1/responses",
            json={"model": "fake", "input": "x", "previous_response_id": created.id},
            headers=other,
        )
        await sdk.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError) as gone:
            await sdk.responses.retrieve(created.id)
        unknown = await http.get(
            "/v1/responses/resp_unknown", headers={"authorization": f"Bearer {CLIENT_KEY}"}
        )
        unstored = await sdk.responses.create(model="fake", input="x", store=False)
        missing = await http.get(
            f"/v1/responses/{unstored.id}", headers={"authorization": f"Bearer {CLIENT_KEY}"}
        )
    assert fetched.id == created.id and fetched.output_text == "mine"
    assert stranger.status_code == 404 and continued.status_code == 404
    assert continued.json()["error"]["param"] == "previous_response_id"
    assert gone.value.code == "response_not_found"
    assert unknown.status_code == missing.status_code == 404
    assert unknown.json() == {
        "error": {
            "message": "no stored response 'resp_unknown' for this API key",
            "type": "not_found_error",
            "code": "response_not_found",
            "param": None,
        }
    }


async def test_parse_with_a_pydantic_model(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, _):
        parsed = await sdk.responses.parse(model="fake", input="Berlin", text_format=City)
    # The fake model builds the object from the schema: strings echo, integers count words.
    assert parsed.output_parsed == City(name="Berlin", population=1)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
    ],
)
async def test_unsupported_fields_are_a_400_naming_them(
    settings: Settings, sdk_for: SdkFactory, extra: dict[str, Any], param: str
) -> None:
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.responses.create(model="fake", input="hi", **extra)
    assert info.value.param == param and info.value.code == "unsupported_parameter"


async def test_unknown_model_and_unknown_field(settings: Settings, sdk_for: SdkFactory) -> None:
    async with sdk_for(settings) as (sdk, http):
        with pytest.raises(openai.NotFoundError) as model:
            await sdk.responses.create(model="nope", input="hi")
        unknown = await http.post(
            "/v1/responses",
            json={"model": "fake", "input": "hi", "frobnicate": True},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
        empty = await http.post(
            "/v1/responses",
            json={"model": "fake", "input": []},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
    assert model.value.code == "model_not_found"
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "frobnicate"
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"


async def test_the_openapi_document_declares_the_routes(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    async with sdk_for(settings) as (_, http):
        document = (await http.get("/openapi.json")).json()
        put = await http.put("/v1/responses/resp_1", headers={"x-api-key": CLIENT_KEY})
    create = document["paths"]["/v1/responses"]["post"]
    assert set(create["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"400", "401", "404", "422", "429", "502", "503", "504"} <= set(create["responses"])
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/ResponsesRequest")
    one = document["paths"]["/v1/responses/{response_id}"]
    assert {"get", "delete"} <= set(one) and "404" in one["get"]["responses"]
    assert put.status_code == 405 and put.headers["allow"] == "DELETE, GET"


async def test_an_upstream_failing_midway_ends_the_stream_with_response_failed(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(kind="drop"))
    async with sdk_for(settings) as (sdk, http):
        stream = await sdk.responses.create(
            model="solo", input="a long enough answer here", stream=True
        )
        events = [event async for event in stream]
        failed = events[-1].response
        stored = await http.get(
            f"/v1/responses/{failed.id}", headers={"authorization": f"Bearer {CLIENT_KEY}"}
        )
    assert events[-1].type == "response.failed" and failed.status == "failed"
    assert failed.error is not None and failed.error.code == "server_error"
    assert failed.output[0].type == "message" and failed.output[0].status == "incomplete"
    assert stored.status_code == 404  # a failed response is not continued from


async def test_cache_hits_are_shared_with_streams_and_counted(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams)
    config["cache"] = {"mode": "on", "namespace": f"resp-{uuid.uuid4().hex[:10]}"}
    hits = sample("aiservice_cache_requests_total", result="hit")
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        first = await sdk.responses.with_raw_response.create(model="solo", input="cached")
        second = await sdk.responses.with_raw_response.create(model="solo", input="cached")
        streamed = await sdk.responses.with_raw_response.create(
            model="solo", input="cached", stream=True
        )
        events = [event async for event in streamed.parse()]
    assert upstreams.primary.calls["/v1/chat/completions"] == 1
    assert [r.headers["x-aiservice-cache"] for r in (first, second, streamed)] == [
        "miss",
        "hit",
        "hit",
    ]
    assert second.headers["x-aiservice-provider"] == "primary"
    one, two = first.parse(), second.parse()
    assert one.output_text == two.output_text == events[-1].response.output_text
    assert one.id != two.id  # a cached completion still answers as a new response
    assert sample("aiservice_cache_requests_total", result="hit") == hits + 2


async def test_fallback_to_the_next_deployment_shows_in_headers_and_metrics(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=503))
    before = sample("aiservice_llm_fallbacks_total", model="chat", provider="primary")
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.responses.with_raw_response.create(model="chat", input="hi")
        streamed = await sdk.responses.with_raw_response.create(
            model="chat", input="hi", stream=True
        )
        events = [event async for event in streamed.parse()]
    assert raw.parse().output_text == "backup: hi"
    assert events[-1].response.output_text == "backup: hi"
    assert raw.headers["x-aiservice-provider"] == streamed.headers["x-aiservice-provider"]
    assert raw.headers["x-aiservice-provider"] == "backup"
    assert raw.headers["x-aiservice-model"] == "gpt-backup"
    assert raw.parse().model == "chat"  # the public name, whoever answered
    assert sample("aiservice_llm_fallbacks_total", model="chat", provider="primary") == before + 2


async def test_rate_limits_apply_with_their_headers(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams)
    config["limits"] = {"requests_per_minute": 2}

    def rejected() -> float:
        name = "aiservice_ratelimit_rejections_total"
        return sum(sample(name, scope=s, limit="requests") for s in ("key", "global"))

    def answered(status: str) -> float:
        labels = {"route": "/v1/responses", "method": "POST", "status": status}
        return sample("aiservice_http_requests_total", **labels)

    before, limited_before = rejected(), answered("429")
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, _):
        ok = await sdk.responses.with_raw_response.create(model="fake", input="1")
        streamed = await sdk.responses.with_raw_response.create(
            model="fake", input="2", stream=True
        )
        [event async for event in streamed.parse()]
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.responses.create(model="fake", input="3")
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert streamed.headers["x-ratelimit-remaining-requests"] == "0"
    limited = info.value.response
    assert limited.status_code == 429 and info.value.code == "rate_limit_exceeded"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert rejected() == before + 1 and answered("429") == limited_before + 1
