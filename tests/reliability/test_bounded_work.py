"""Bounded work per request: every cap in ``limits.requests`` is a 400 naming the field
and the limit, and the heaviest request the caps allow leaves the event loop free
(``/health/live`` keeps answering within a second while it runs, in a real uvicorn
process)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiservice import get_runtime
from aiservice.config.sections import RequestLimits
from aiservice.errors import InvalidRequestError
from aiservice.llm import Gateway
from tests.platforms.procs import port_env, running

AUTH = {"authorization": "Bearer bounded-work-client-key"}
USER = [{"role": "user", "content": "hi"}]
SMALL_LIMITS = {
    "max_messages": 3,
    "max_tools": 2,
    "max_n": 2,
    "max_tokens": 100,
    "max_embedding_inputs": 4,
    "max_embedding_dimensions": 64,
    "max_embedding_values": 128,
}


def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


CHAT_OVER = [
    ("messages", {"messages": USER * 4}, "max_messages", 3),
    ("tools", {"messages": USER, "tools": [tool("a"), tool("b"), tool("c")]}, "max_tools", 2),
    ("n", {"messages": USER, "n": 3}, "max_n", 2),
    ("max_tokens", {"messages": USER, "max_tokens": 101}, "max_tokens", 100),
    ("max_completion_tokens", {"messages": USER, "max_completion_tokens": 101}, "max_tokens", 100),
]
EMBED_OVER = [
    ("input", {"input": ["a"] * 5}, "max_embedding_inputs", 4),
    ("dimensions", {"input": ["a"], "dimensions": 65}, "max_embedding_dimensions", 64),
    ("input", {"input": ["a"] * 3, "dimensions": 64}, "max_embedding_values", 128),
]


@pytest.fixture
def limited(make_settings: Any) -> Any:
    return make_settings(
        {"auth": {"api_keys": ["bounded-work-client-key"]}, "limits": {"requests": SMALL_LIMITS}}
    )


def assert_limit_envelope(response: httpx.Response, param: str, key: str, limit: int) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["code"] == "limit_exceeded"
    assert f"limits.requests.{key}" in error["message"] and str(limit) in error["message"]


@pytest.mark.parametrize(("param", "body", "key", "limit"), CHAT_OVER)
@pytest.mark.parametrize("stream", [False, True])
async def test_chat_over_a_cap_is_a_400_naming_param_and_limit(
    limited: Any,
    client_for: Any,
    param: str,
    body: dict[str, Any],
    key: str,
    limit: int,
    stream: bool,
) -> None:
    async with client_for(limited) as http:
        over = await http.post(
            "/v1/chat/completions",
            json={"model": "fake", "stream": stream, **body},
            headers=AUTH,
        )
    assert_limit_envelope(over, param, key, limit)


@pytest.mark.parametrize(("param", "body", "key", "limit"), EMBED_OVER)
async def test_embeddings_over_a_cap_is_a_400_naming_param_and_limit(
    limited: Any, client_for: Any, param: str, body: dict[str, Any], key: str, limit: int
) -> None:
    async with client_for(limited) as http:
        over = await http.post("/v1/embeddings", json={"model": "fake", **body}, headers=AUTH)
    assert_limit_envelope(over, param, key, limit)


async def test_requests_at_the_caps_are_served(limited: Any, client_for: Any) -> None:
    async with client_for(limited) as http:
        chat = await http.post(
            "/v1/chat/completions",
            json={
                "model": "fake",
                "messages": USER * 3,
                "tools": [tool("a"), tool("b")],
                "tool_choice": "none",
                "n": 2,
                "max_tokens": 100,
            },
            headers=AUTH,
        )
        embed = await http.post(
            "/v1/embeddings",
            json={"model": "fake", "input": ["a", "b"], "dimensions": 64},
            headers=AUTH,
        )
    assert chat.status_code == 200 and len(chat.json()["choices"]) == 2
    assert embed.status_code == 200 and [len(d["embedding"]) for d in embed.json()["data"]] == [
        64,
        64,
    ]


async def test_the_gateway_enforces_the_caps_when_called_directly(
    limited: Any, client_for: Any
) -> None:
    async with client_for(limited) as http:
        gateway: Gateway = get_runtime(http._transport.app).gateway
        with pytest.raises(InvalidRequestError) as chat:
            await gateway.chat("fake", {"messages": USER, "n": 3}, None)
        with pytest.raises(InvalidRequestError) as stream:
            await gateway.stream("fake", {"messages": USER * 4}, None)
        with pytest.raises(InvalidRequestError) as embed:
            await gateway.embed("fake", ["a"] * 3, dimensions=64)
    assert (chat.value.param, stream.value.param, embed.value.param) == ("n", "messages", "input")


def test_defaults_are_documented_and_sane() -> None:
    limits = RequestLimits()
    assert (
        limits.max_embedding_values <= limits.max_embedding_inputs * limits.max_embedding_dimensions
    )
    assert 0 < limits.deadline_seconds <= 600
    doc = (Path(__file__).parents[2] / "docs" / "gateway-limits.md").read_text(encoding="utf-8")
    for name in RequestLimits.model_fields:
        assert f"`{name}`" in doc, f"limits.requests.{name} is not documented"


async def test_a_huge_schema_does_not_multiply_the_fake_reply(
    make_settings: Any, client_for: Any
) -> None:
    text = "x" * 100_000
    schema = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(2000)},
    }
    body = {
        "model": "fake",
        "messages": [{"role": "user", "content": text}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        "n": 16,
    }
    async with client_for(make_settings({"limits": {"max_body_bytes": 4_000_000}})) as http:
        answer = await http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200
    # 2000 copies of 100 kB would be 200 MB per choice; the fake stops at 64 KiB of strings.
    assert len(answer.content) < 16 * 300_000


async def test_a_long_reply_streams_in_a_bounded_number_of_chunks(
    make_settings: Any, client_for: Any
) -> None:
    words = " ".join(f"w{i}" for i in range(50_000))
    body = {"model": "fake", "messages": [{"role": "user", "content": words}], "stream": True}
    async with client_for(make_settings({})) as http:
        answer = await http.post("/v1/chat/completions", json=body)
    events = [line for line in answer.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) <= 1024 + 4
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
        for e in events[:-1]
        if json.loads(e[6:])["choices"]
    )
    assert text == words


# -- the event loop stays free -------------------------------------------------------------

HEAVY_INPUTS = 256
HEAVY_DIMENSIONS = 8192  # 256 × 8192 = 2 Mi values: exactly the default max_embedding_values
MIN_BUSY = 0.6  # seconds of heavy work the probe has to live through
MAX_BATCHES = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Any:
    cwd = tmp_path_factory.mktemp("bounded")
    (cwd / "aiservice.yaml").write_text("logging: {access_log: false, level: WARNING}\n")
    env = port_env(AISERVICE_SERVER__HOST="127.0.0.1")
    with running([sys.executable, "-m", "aiservice", "serve"], env=env, cwd=cwd) as (base, _):
        yield base


async def poll_live(http: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    times = []
    while not stop.is_set():
        started = time.monotonic()
        response = await http.get("/health/live")
        times.append(time.monotonic() - started)
        assert response.status_code == 200
        await asyncio.sleep(0.05)
    return times


async def raw_post(base: str, path: str, body: dict[str, Any]) -> tuple[str, int]:
    """POST over a bare socket, reading the answer as bytes: a client that costs almost
    no CPU, so the test process's own event loop (where the probe runs) stays free and
    the probe's timings measure the server, not the parsing of a 40 MB answer."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
        + payload
    )
    status = (await reader.readline()).decode()
    size = 0
    while chunk := await reader.read(1 << 20):
        size += len(chunk)
    writer.close()
    return status, size


async def heavy_while_polling(base: str, requests: list[dict[str, Any]]) -> list[float]:
    """Send the batch of heavy requests again and again (each batch concurrently) until the
    server has been busy for MIN_BUSY seconds, polling /health/live all along. Repeating
    rather than asserting one batch's duration keeps the proof independent of how fast
    the machine is: a fast machine just runs more batches."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
        stop = asyncio.Event()
        poller = asyncio.create_task(poll_live(probe, stop))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        answers: list[tuple[str, int]] = []
        for _ in range(MAX_BATCHES):
            answers += await asyncio.gather(
                *(raw_post(base, r["path"], r["body"]) for r in requests)
            )
            if time.monotonic() - started >= MIN_BUSY:
                break
        busy = time.monotonic() - started
        stop.set()
        times = await poller
    for status, size in answers:
        assert " 200 " in status, status
        assert size > 1000
    assert busy >= MIN_BUSY, f"{MAX_BATCHES} batches took only {busy:.2f} s"
    assert len(times) >= 5, "the probe must have been answered while the server was busy"
    return times


@pytest.mark.slow
async def test_live_answers_within_a_second_during_the_heaviest_embeddings(server: str) -> None:
    body = {
        "model": "fake",
        "input": [f"text {i}" for i in range(HEAVY_INPUTS)],
        "dimensions": HEAVY_DIMENSIONS,
    }
    requests = [
        {"path": "/v1/embeddings", "body": body},
        {"path": "/v1/embeddings", "body": {**body, "encoding_format": "base64"}},
    ]
    times = await heavy_while_polling(server, requests)
    assert max(times) < 1.0, [round(t, 3) for t in times]


@pytest.mark.slow
async def test_live_answers_within_a_second_during_heavy_chats(server: str) -> None:
    text = " ".join(f"w{i}" for i in range(100_000))  # ~700 kB, under max_body_bytes
    chat = {"model": "fake", "messages": [{"role": "user", "content": text}], "n": 16}
    requests = [{"path": "/v1/chat/completions", "body": chat}] * 3 + [
        {"path": "/v1/chat/completions", "body": {**chat, "stream": True, "n": 1}}
    ] * 2
    times = await heavy_while_polling(server, requests)
    assert max(times) < 1.0, [round(t, 3) for t in times]


def test_an_invalid_cap_is_a_config_error_naming_the_key(make_settings: Any) -> None:
    from aiservice.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make_settings({"limits": {"requests": {"max_n": 0}}})
    assert "limits.requests.max_n" in str(info.value) and "aiservice.yaml" in str(info.value)
