"""The ``openai-agents`` SDK running a one-tool agent through the gateway's /v1/responses
(its OpenAI client pointed at the app, tracing export off), plain and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aiservice import Settings

KEY = "client-key-agents-0001"


@pytest.fixture(autouse=True)
def no_tracing() -> Iterator[None]:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)  # nothing is exported to OpenAI's trace endpoint
    yield
    set_tracing_disabled(False)


@pytest.fixture
async def agent(client_for: Any, make_settings: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    from agents import Agent, OpenAIResponsesModel, function_tool
    from openai import AsyncOpenAI

    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    settings: Settings = make_settings({"auth": {"api_keys": [KEY]}})  # model "fake"
    async with client_for(settings) as http:
        client = AsyncOpenAI(
            base_url="http://testserver/v1", api_key=KEY, http_client=http, max_retries=0
        )
        model = OpenAIResponsesModel(model="fake", openai_client=client)
        yield (
            Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model),
            calls,
        )


async def test_a_one_tool_agent_runs_through_the_gateway(agent: tuple[Any, list[str]]) -> None:
    from agents import Runner

    weather, calls = agent
    result = await Runner.run(weather, "Paris")
    # The fake model calls the tool with the user's text, then echoes the tool's result.
    assert calls == ["Paris"]
    assert result.final_output == "tool result: sunny in Paris"
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert sum(r.usage.total_tokens for r in result.raw_responses) > 0


async def test_the_agent_streams_through_the_gateway(agent: tuple[Any, list[str]]) -> None:
    from agents import Runner

    weather, calls = agent
    run = Runner.run_streamed(weather, "Oslo")
    deltas = [
        event.data.delta
        async for event in run.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]
    assert calls == ["Oslo"]
    assert run.final_output == "tool result: sunny in Oslo"
    assert "".join(deltas) == "tool result: sunny in Oslo"
