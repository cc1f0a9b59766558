"""/v1/responses through the official openai SDK against loopback upstreams speaking the
OpenAI, Anthropic and Gemini wire formats (the provider tests' echo servers): create,
stream, a function-tool round trip, previous_response_id and parse on each."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from aiservice import Settings
from tests.providers.fixtures import anthropic_upstream, gemini_upstream
from tests.providers.fixtures.upstream import Upstream, json_reply, upstream_app
from tests.support.servers import serve_app
from tests.support.upstream_openai import OpenAIUpstream

KEY = "client-key-wires-0001"
WIRES = ["openai", "anthropic", "gemini"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
OSLO = '{"name": "Oslo", "population": 700000}'


class City(BaseModel):
    name: str
    population: int


@dataclass
class Wires:
    openai: OpenAIUpstream
    anthropic: Upstream
    gemini: Upstream
    settings: Settings

    def reset(self) -> None:
        self.openai.reset()
        self.openai.reply_prefix = "echo: "
        self.anthropic.reset()
        self.gemini.reset()

    def last_body(self, wire: str) -> Any:
        if wire == "openai":
            return self.openai.requests[-1].body
        upstream: Upstream = getattr(self, wire)
        return upstream.last.body


@pytest.fixture(scope="module")
def wire_servers() -> Iterator[Wires]:
    openai_up, anthropic_up, gemini_up = OpenAIUpstream(), Upstream(), Upstream()
    gemini_echo = gemini_upstream.make_echo(gemini_upstream.TokenEndpoint())
    with (
        serve_app(openai_up.app) as openai_url,
        serve_app(
            upstream_app(anthropic_up, anthropic_upstream.echo, anthropic_upstream.error_body)
        ) as anthropic_url,
        serve_app(upstream_app(gemini_up, gemini_echo, gemini_upstream.error_body)) as gemini_url,
    ):
        settings = Settings(
            providers={
                "oa": {"type": "openai", "base_url": openai_url + "/v1", "api_key": "sk-o-1"},
                "an": {"type": "anthropic", "base_url": anthropic_url, "api_key": "sk-ant-1"},
                "ge": {"type": "gemini", "base_url": gemini_url, "api_key": "gemini-key-1"},
            },
            models={
                "openai": [{"provider": "oa", "model": "gpt-test"}],
                "anthropic": [{"provider": "an", "model": "claude-test"}],
                "gemini": [{"provider": "ge", "model": "gemini-test"}],
            },
            auth={"api_keys": [KEY]},
            cache={"mode": "off"},
        )
        yield Wires(openai_up, anthropic_up, gemini_up, settings)


@pytest.fixture
def wires(wire_servers: Wires) -> Iterator[Wires]:
    wire_servers.reset()
    yield wire_servers
    wire_servers.reset()


@pytest.fixture
async def sdk(wires: Wires, client_for: Any) -> AsyncIterator[AsyncOpenAI]:
    async with client_for(wires.settings) as http:
        yield AsyncOpenAI(
            base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
        )


@pytest.mark.parametrize("wire", WIRES)
async def test_create_and_stream(wire: str, sdk: AsyncOpenAI) -> None:
    response = await sdk.responses.create(model=wire, input="hi")
    stream = await sdk.responses.create(model=wire, input="hi there", stream=True)
    events = [event async for event in stream]
    assert response.output_text == "echo: hi" and response.model == wire
    assert response.usage is not None and response.usage.input_tokens > 0
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.strip() == events[-1].response.output_text.strip() == "echo: hi there"
    assert events[-1].response.usage.output_tokens > 0


@pytest.mark.parametrize("wire", WIRES)
async def test_function_tool_round_trip(wire: str, sdk: AsyncOpenAI, wires: Wires) -> None:
    first = await sdk.responses.create(model=wire, input="Paris", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = await sdk.responses.create(model=wire, previous_response_id=first.id, input=[output])
    sent = json.dumps(wires.last_body(wire))
    # The call and its output reached the upstream in its own wire format (Gemini pairs
    # them by name: its wire format has no call ids).
    assert "sunny" in sent and "get_weather" in sent
    assert wire == "gemini" or call.call_id in sent
    assert second.output_text.startswith("echo: ")


@pytest.mark.parametrize("wire", WIRES)
async def test_previous_response_id(wire: str, sdk: AsyncOpenAI, wires: Wires) -> None:
    first = await sdk.responses.create(model=wire, input="hello")
    second = await sdk.responses.create(
        model=wire, input="and again", previous_response_id=first.id
    )
    assert second.output_text == "echo: and again"
    sent = json.dumps(wires.last_body(wire))
    assert "hello" in sent and "echo: hello" in sent and "and again" in sent


def _json_answer(wire: str) -> Any:
    if wire == "anthropic":
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": OSLO}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 12, "output_tokens": 9},
        }
    candidate = {"content": {"role": "model", "parts": [{"text": OSLO}]}, "finishReason": "STOP"}
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 9, "totalTokenCount": 21}
    return {"candidates": [{**candidate, "index": 0}], "usageMetadata": usage}


@pytest.mark.parametrize("wire", WIRES)
async def test_parse_with_a_pydantic_model(wire: str, sdk: AsyncOpenAI, wires: Wires) -> None:
    if wire == "openai":
        wires.openai.reply_prefix = ""  # the echo model answers with the JSON it is given
    else:
        upstream: Upstream = getattr(wires, wire)
        upstream.replay(json_reply(_json_answer(wire)))
    parsed = await sdk.responses.parse(model=wire, input=OSLO, text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=700000)
    sent = wires.last_body(wire)
    if wire == "openai":
        assert sent["response_format"]["json_schema"]["name"] == "City"
    elif wire == "gemini":
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
    else:
        assert "population" in json.dumps(sent["system"])  # the schema, as an instruction
