"""POST /v1/messages through the official anthropic SDK, unmodified, against a gateway
served by uvicorn in front of the fake model and loopback upstreams speaking the OpenAI,
Anthropic and Gemini wire formats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.providers.fixtures.upstream import json_reply, sse_data
from tests.support.llm_servers import Upstreams, upstream_servers, upstreams
from tests.support.messages_upstreams import (
    GatewayFactory,
    MessagesUpstreams,
    gateway_for,
    messages_servers,
    messages_settings,
    messages_upstreams,
)

__all__ = [
    "gateway_for",
    "messages_servers",
    "messages_settings",
    "messages_upstreams",
    "upstream_servers",
    "upstreams",
]

MODELS = ["fake", "openai", "claude", "gemini"]
DOC = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}
PROVIDERS = {"fake": "offline", "openai": "primary", "claude": "claude", "gemini": "gem"}
HELLO = [{"role": "user", "content": "hello there"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# What each upstream answers to "hello there" (the fake echoes, the loopbacks prefix).
REPLY = {
    "fake": "hello there",
    "openai": "echo: hello there",
    "claude": "echo: hello there",
    "gemini": "echo: hello there",
}


@pytest.mark.parametrize("model", MODELS)
async def test_create(model: str, messages_settings: Any, gateway_for: GatewayFactory) -> None:
    async with gateway_for(messages_settings()) as gw:
        raw = await gw.sdk.messages.with_raw_response.create(
            model=model, max_tokens=64, messages=HELLO
        )
        message = await raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == model  # the public name, whichever deployment answered
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text.strip() == REPLY[model]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-aiservice-provider"] == PROVIDERS[model]
    assert raw.headers["content-type"] == "application/json"


@pytest.mark.parametrize("model", MODELS)
async def test_stream_text_and_final_message(
    model: str, messages_settings: Any, gateway_for: GatewayFactory
) -> None:
    async with gateway_for(messages_settings()) as gw:
        async with gw.sdk.messages.stream(model=model, max_tokens=64, messages=HELLO) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert "".join(pieces).strip() == REPLY[model]
    assert len(pieces) >= (1 if model == "fake" else 2)  # streamed, not one blob
    assert final.content[0].text == "".join(pieces)  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.model == model
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def _tool_input(model: str) -> dict[str, str]:
    # The fake and the OpenAI loopback call the tool with the user's text, the Anthropic
    # and Gemini loopbacks with "value of <property>".
    return {"city": "Lisbon"} if model in ("fake", "openai") else {"city": "value of city"}


def _tool_result_seen(model: str, gw_upstreams: tuple[Upstreams, MessagesUpstreams]) -> Any:
    """The tool result as the upstream received it, in its own wire format."""
    openai, others = gw_upstreams
    if model == "openai":
        return [m for m in openai.primary.requests[-1].body["messages"] if m["role"] == "tool"]
    if model == "claude":
        return others.anthropic.last.body["messages"][-1]["content"]
    return [
        p["functionResponse"]
        for c in others.gemini.last.body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]


@pytest.mark.parametrize("model", MODELS)
async def test_tool_use_round_trip(
    model: str,
    messages_settings: Any,
    gateway_for: GatewayFactory,
    upstreams: Upstreams,
    messages_upstreams: MessagesUpstreams,
) -> None:
    ask = [{"role": "user", "content": "Lisbon"}]
    async with gateway_for(messages_settings()) as gw:
        first = await gw.sdk.messages.create(
            model=model, max_tokens=64, messages=ask, tools=[WEATHER]
        )
        async with gw.sdk.messages.stream(
            model=model, max_tokens=64, messages=ask, tools=[WEATHER]
        ) as stream:
            streamed = await stream.get_final_message()
        call = first.content[-1]
        assert call.type == "tool_use" and first.stop_reason == "tool_use"
        assert call.name == "get_weather" and call.input == _tool_input(model)
        assert streamed.content[-1].type == "tool_use"
        assert streamed.content[-1].input == _tool_input(model)  # type: ignore[union-attr]
        assert streamed.stop_reason == "tool_use"
        result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
        answer = await gw.sdk.messages.create(
            model=model,
            max_tokens=64,
            messages=[
                *ask,
                {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                {"role": "user", "content": [result]},  # type: ignore[list-item]
            ],
        )
    assert answer.stop_reason == "end_turn"
    text = answer.content[0].text  # type: ignore[union-attr]
    if model == "fake":
        assert text == "tool result: sunny"
        return
    seen = _tool_result_seen(model, (upstreams, messages_upstreams))
    expected = {
        "openai": [{"role": "tool", "tool_call_id": call.id, "content": "sunny"}],
        "claude": [result],  # natively: the block exactly as the client wrote it
        "gemini": [{"name": "get_weather", "response": {"output": "sunny"}}],
    }[model]
    assert seen == expected


async def test_an_anthropic_upstream_gets_the_clients_body_and_its_events_come_back(
    messages_settings: Any, gateway_for: GatewayFactory, messages_upstreams: MessagesUpstreams
) -> None:
    body = {
        "model": "claude",
        "max_tokens": 77,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}, DOC]}],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u-7"},
        "stop_sequences": ["END"],
    }
    async with gateway_for(messages_settings()) as gw:
        plain = await gw.http.post("/v1/messages", json=body, headers={"x-api-key": gw.sdk.api_key})
        sent = messages_upstreams.anthropic.last
        raw = await gw.http.post(
            "/v1/messages", json={**body, "stream": True}, headers={"x-api-key": gw.sdk.api_key}
        )
    assert plain.status_code == 200, plain.text
    # Not translated: the upstream received the client's body, with the upstream model.
    assert sent.path == "/v1/messages"
    assert sent.body == {**body, "model": "claude-echo", "stream": True}
    assert sent.headers["x-api-key"] == "sk-ant-loopback-0123456789"
    assert plain.json()["id"] == "msg_echo"  # the upstream's message, not a rebuilt one
    # Streamed: the upstream's events, verbatim but for the public model name.
    events = sse_data(raw.text)
    upstream_events = anthropic_events(sent.body)
    upstream_events[0]["message"]["model"] = "claude"
    assert events == upstream_events
    frames = [block.splitlines()[0] for block in raw.text.strip().split("\n\n")]
    assert frames == [f"event: {e['type']}" for e in events]


def anthropic_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    from tests.providers.fixtures.anthropic_upstream import _stream_events

    return json.loads(json.dumps(_stream_events(body, "echo: hello there", None)))


async def test_top_k_needs_a_deployment_that_honours_it(
    messages_settings: Any, gateway_for: GatewayFactory
) -> None:
    body = {"max_tokens": 16, "messages": HELLO, "top_k": 4}
    async with gateway_for(messages_settings()) as gw:
        refused = await gw.http.post(
            "/v1/messages",
            json={**body, "model": "claude-or-openai"},
            headers={"x-api-key": gw.sdk.api_key},
        )
        document = await gw.http.post(
            "/v1/messages",
            json={
                **body,
                "top_k": None,
                "model": "openai",
                "messages": [{"role": "user", "content": [DOC]}],
            },
            headers={"x-api-key": gw.sdk.api_key},
        )
        native = await gw.sdk.messages.create(
            model="claude", max_tokens=16, messages=HELLO, extra_body={"top_k": 4}
        )
    assert refused.status_code == 400
    error = refused.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert "top_k" in error["error"]["message"]
    assert "primary/gpt-test" in error["error"]["message"]
    assert "messages[0].content[0]" in document.json()["error"]["message"]
    assert document.status_code == 400
    assert native.content[0].text.strip() == "echo: hello there"  # type: ignore[union-attr]


async def test_count_tokens_asks_the_upstream_that_can_count(
    messages_settings: Any,
    gateway_for: GatewayFactory,
    messages_upstreams: MessagesUpstreams,
) -> None:
    messages_upstreams.anthropic.replay(json_reply({"input_tokens": 42}))
    messages_upstreams.gemini.replay(json_reply({"totalTokens": 17, "totalBillableCharacters": 50}))
    counts: dict[str, Any] = {}
    async with gateway_for(messages_settings()) as gw:
        for model in MODELS:
            raw = await gw.sdk.messages.with_raw_response.count_tokens(
                model=model, messages=HELLO, system="Be brief.", tools=[WEATHER]
            )
            parsed = await raw.parse()
            counts[model] = (parsed.input_tokens, raw.headers["x-aiservice-token-count"])
    claude = messages_upstreams.anthropic.received[-1]
    gemini = messages_upstreams.gemini.received[-1]
    assert counts["claude"] == (42, "upstream")
    assert counts["gemini"] == (17, "upstream")
    assert claude.path == "/v1/messages/count_tokens"
    assert claude.body == {
        "model": "claude-echo",
        "messages": HELLO,
        "system": "Be brief.",
        "tools": [WEATHER],
    }
    assert gemini.path.endswith("/models/gemini-echo:countTokens")
    request = gemini.body["generateContentRequest"]
    assert request["model"] == "models/gemini-echo"
    assert request["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    # No counting API behind the fake and OpenAI-compatible servers: an estimate.
    for model in ("fake", "openai"):
        tokens, source = counts[model]
        assert source == "estimate" and 10 < tokens < 100
