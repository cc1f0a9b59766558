"""A stream that fails after its first chunk ends with an error event in the envelope
shape, then ``data: [DONE]``: never a cut connection, never a 500 after the headers.

Real loopback upstreams die mid-stream (reset, stall past the timeout, garbage, a lone
surrogate, a wrong shape, an early clean close); the client is the official openai SDK,
which must raise ``APIError`` from the error event, not a connection error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from aiservice.errors import AIServiceError
from aiservice.llm import Gateway
from tests.conftest import app_client
from tests.support.faulty_upstream import MID_STREAM, Fault, FaultyUpstream, scripted

CHAT = "/v1/chat/completions"
CLIENT_KEY = "streams-client-key-0001"
MESSAGES = [{"role": "user", "content": "one two three four"}]


class Plan:
    def __init__(self) -> None:
        self.current = scripted([])

    def __call__(self) -> Fault:
        return self.current()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FaultyUpstream, str, Plan]]:
    plan = Plan()
    server = FaultyUpstream(plan, stall_seconds=2.0)
    with server.serving() as url:
        yield server, url, plan


@pytest.fixture
def plan(upstream: Any) -> Iterator[Plan]:
    upstream[0].calls.clear()
    yield upstream[2]
    upstream[2].current = scripted([])


def config(url: str, cache: str = "off") -> dict[str, Any]:
    provider = {"type": "openai", "base_url": url + "/v1", "timeout": 0.5, "max_retries": 0}
    return {
        "providers": {"up": provider, "spare": {**provider}},
        "models": {"chat": [{"provider": "up", "model": "m"}, {"provider": "spare", "model": "m"}]},
        "auth": {"api_keys": [CLIENT_KEY]},
        "cache": {"mode": cache},
        "logging": {"level": "CRITICAL"},
    }


def events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def assert_error_then_done(raw: httpx.Response) -> dict[str, Any]:
    assert raw.status_code == 200
    data = events(raw.text)
    assert data[-1] == "[DONE]", raw.text[-300:]
    error = json.loads(data[-2])["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert all("error" not in json.loads(e) for e in data[:-2])
    assert len(data) >= 4  # chunks before the failure were delivered
    return dict(error)


@pytest.mark.parametrize("fault", sorted(MID_STREAM))
async def test_mid_stream_failure_is_an_error_event_then_done(
    make_settings: Any, client_for: Any, upstream: Any, plan: Plan, fault: Fault
) -> None:
    plan.current = scripted([], then=fault)
    async with client_for(make_settings(config(upstream[1]))) as http:
        raw = await http.post(
            CHAT,
            json={"model": "chat", "messages": MESSAGES, "stream": True},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
    error = assert_error_then_done(raw)
    assert error["type"] in ("upstream_error", "timeout_error")
    assert upstream[0].calls[fault] == 1  # no fallback after the first chunk


@pytest.mark.parametrize("fault", ["drop_mid", "stall_mid", "garbage_mid", "surrogate_mid"])
async def test_the_openai_sdk_raises_api_error_not_a_connection_error(
    make_settings: Any, upstream: Any, plan: Plan, fault: Fault
) -> None:
    plan.current = scripted([], then=fault)
    received: list[str] = []
    async with app_client(make_settings(config(upstream[1]))) as http:
        sdk = openai.AsyncOpenAI(
            base_url="http://testserver/v1", api_key=CLIENT_KEY, http_client=http, max_retries=0
        )
        stream = await sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert not isinstance(info.value, openai.APIConnectionError)
    assert "".join(received).startswith("echo: one")
    assert info.value.message


async def test_through_the_response_cache_too(
    make_settings: Any, client_for: Any, upstream: Any, plan: Plan
) -> None:
    plan.current = scripted(["drop_mid"])
    body = {"model": "chat", "messages": MESSAGES, "stream": True, "temperature": 0}
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with client_for(make_settings(config(upstream[1], cache="deterministic"))) as http:
        broken = await http.post(CHAT, json=body, headers=headers)
        retried = await http.post(CHAT, json=body, headers=headers)
    assert_error_then_done(broken)
    assert retried.headers["x-aiservice-cache"] == "miss"  # the broken stream was not stored
    assert events(retried.text)[-1] == "[DONE]" and '"error"' not in retried.text


class Exploding:
    """A provider whose stream raises a plain exception after its first chunk: a bug in
    the gateway's own code path, not an upstream error."""

    name = "boom"

    async def stream_chat(self, model: str, request: Any) -> Any:
        yield {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}],
        }
        raise RuntimeError("a bug after the first chunk")


async def test_a_gateway_failure_after_the_first_chunk_is_an_error_event(
    make_settings: Any, client_for: Any, upstream: Any
) -> None:
    async with client_for(make_settings(config(upstream[1]))) as http:
        gateway: Gateway = http._transport.app.state.aiservice.gateway  # type: ignore[attr-defined]
        deployment = gateway.resolve("chat")[0]
        object.__setattr__(deployment.provider, "stream_chat", Exploding().stream_chat)
        object.__setattr__(deployment.provider, "stream_chat_wire", None)  # not the batch path
        raw = await http.post(
            CHAT,
            json={"model": "chat", "messages": MESSAGES, "stream": True},
            headers={"authorization": f"Bearer {CLIENT_KEY}"},
        )
    data = events(raw.text)
    assert raw.status_code == 200 and data[-1] == "[DONE]"
    assert json.loads(data[0])["choices"][0]["delta"]["content"] == "partial"
    assert json.loads(data[-2])["error"]["type"] == "upstream_error"


async def test_sse_framing_turns_any_exception_into_an_error_event() -> None:
    from aiservice.api.openai_compat import sse_events

    async def chunks() -> Any:
        yield {"choices": [{"index": 0, "delta": {"content": "a"}}]}
        raise AIServiceError("internal server error")

    async def unencodable() -> Any:
        yield {"choices": [{"index": 0, "delta": {"content": "bad \ud800"}}]}

    framed = [e async for e in sse_events(chunks(), include_usage=False)]
    assert framed[-1] == b"data: [DONE]\n\n" and b'"error"' in framed[-2]
    framed = [e async for e in sse_events(unencodable(), include_usage=False)]
    assert framed[-1] == b"data: [DONE]\n\n"
    assert json.loads(framed[0][6:])["error"]["type"] == "upstream_error"


async def test_an_unsendable_first_chunk_is_a_502_or_a_fallback(
    make_settings: Any, client_for: Any, upstream: Any, plan: Plan
) -> None:
    plan.current = scripted(["surrogate_first", "surrogate_first"])
    cfg = config(upstream[1])
    cfg["models"]["solo"] = [{"provider": "up", "model": "m"}]
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    async with client_for(make_settings(cfg)) as http:
        solo = await http.post(
            CHAT, json={"model": "solo", "messages": MESSAGES, "stream": True}, headers=headers
        )
        pair = await http.post(
            CHAT, json={"model": "chat", "messages": MESSAGES, "stream": True}, headers=headers
        )
    # Before the first chunk the status line is still ours to choose.
    assert solo.status_code == 502 and solo.json()["error"]["type"] == "upstream_error"
    assert pair.status_code == 200 and events(pair.text)[-1] == "[DONE]"
    assert '"error"' not in pair.text and upstream[0].calls["surrogate_first"] == 2
