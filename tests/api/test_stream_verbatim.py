"""OpenAI-wire streams sent as the upstream's own text (``ChunkEncoder.verbatim``), against
the general path (each chunk encoded), through the whole app and a real loopback upstream:
the same bytes when the upstream writes compact UTF-8 JSON, chunks the official SDK parses
alike otherwise, the general path's bytes for every chunk that needs it, and the same
usage accounted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from aiservice.llm.accounting import UsageRecord
from aiservice.llm.encode import ChunkEncoder
from aiservice.providers import openai as openai_provider
from tests.conftest import app_client
from tests.support.servers import serve_app

KEY = "verbatim-client-key-0001"
USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
EVENTS: list[str] = []  # the data of the upstream's next stream, before its [DONE]
ONE_WRITE: list[bool] = []  # set: the upstream writes the whole stream at once


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if ONE_WRITE:
        body = "".join(f"data: {data}\n\n" for data in [*EVENTS, "[DONE]"]).encode()
        await send({"type": "http.response.body", "body": body})
        return
    for data in [*EVENTS, "[DONE]"]:
        body = f"data: {data}\n\n".encode()
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve_app(upstream_app, lifespan="off") as url:
        yield url


def chunk(content: str | None = "tok", finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "upstream-model-2025",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def openai_style(chunks: list[dict[str, Any]]) -> list[str]:
    """How OpenAI writes a stream with include_usage: compact UTF-8, ``"usage":null``
    last in every chunk, then the usage chunk."""
    compact = [
        json.dumps({**c, "usage": None}, ensure_ascii=False, separators=(",", ":")) for c in chunks
    ]
    usage = {**chunk(), "choices": [], "usage": USAGE}
    return [*compact, json.dumps(usage, ensure_ascii=False, separators=(",", ":"))]


class Run:
    def __init__(self, raw: httpx.Response, sdk: list[Any], usage: list[UsageRecord]) -> None:
        self.raw, self.sdk, self.usage = raw, sdk, usage
        self.events = [line[6:] for line in raw.text.split("\n\n") if line.startswith("data: ")]


async def run(
    make_settings: Any,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    general: bool,
    sdk: bool = True,
) -> tuple[Run, int]:
    """The stream through the app, raw and through the SDK; and how many chunks took
    the encoding (``general``: the provider's batch path switched off)."""
    settings = make_settings(
        {
            "providers": {
                "up": {"type": "openai", "base_url": url + "/v1", "max_retries": 0, "timeout": 5}
            },
            "models": {"pub": [{"provider": "up", "model": "upstream-model"}]},
            "auth": {"api_keys": [KEY]},
            "cache": {"mode": "off"},
            "logging": {"level": "CRITICAL"},
        }
    )
    encoded = 0
    plain = ChunkEncoder.__call__

    def counted(self: ChunkEncoder, chunk: Any) -> Any:
        nonlocal encoded
        encoded += 1
        return plain(self, chunk)

    monkeypatch.setattr(ChunkEncoder, "__call__", counted)
    body = {
        "model": "pub",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    usage: list[UsageRecord] = []

    async def listen(record: UsageRecord) -> None:
        usage.append(record)

    async with app_client(settings) as http:
        runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
        runtime.gateway.accountant.listeners.append(listen)
        if general:
            object.__setattr__(runtime.gateway.table.providers["up"], "stream_chat_wire", None)
        headers = {"authorization": f"Bearer {KEY}"}
        raw = await http.post("/v1/chat/completions", json=body, headers=headers)
        chunks = []
        if sdk:
            client = AsyncOpenAI(base_url="http://testserver/v1", api_key=KEY, http_client=http)
            stream = await client.chat.completions.create(**body)
            chunks = [c async for c in stream]
    monkeypatch.setattr(ChunkEncoder, "__call__", plain)
    return Run(raw, chunks, usage), encoded


def parsed(chunks: list[Any]) -> list[tuple[dict[str, Any], set[str]]]:
    return [(c.model_dump(), c.model_fields_set) for c in chunks]


@pytest.fixture
async def both(
    make_settings: Any, upstream_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    # The usage chunk's ``created`` is the gateway's clock: the same second in both runs.
    monkeypatch.setattr(openai_provider, "time", SimpleNamespace(time=lambda: 1.0))

    async def compare() -> tuple[Run, Run, int]:
        fast, encoded = await run(make_settings, upstream_url, monkeypatch, general=False)
        general, _ = await run(make_settings, upstream_url, monkeypatch, general=True)
        assert parsed(fast.sdk) == parsed(general.sdk)
        assert [json.loads(e) for e in fast.events[:-1]] == [
            json.loads(e) for e in general.events[:-1]
        ]
        assert fast.usage == general.usage and len(fast.usage) == 2
        return fast, general, encoded

    yield compare
    EVENTS.clear()


async def test_an_openai_stream_is_sent_byte_for_byte_as_the_general_path_sends_it(
    both: Any,
) -> None:
    EVENTS[:] = openai_style(
        [chunk(""), chunk('é \u2028 \\ " [{'), chunk("tok"), chunk(None, "stop")]
    )
    fast, general, encoded = await both()
    assert fast.raw.content == general.raw.content
    assert encoded == 2  # the usage chunk, in each of the two streams: nothing else
    assert all(c.model == "pub" for c in fast.sdk)
    assert fast.usage[0].output_tokens == USAGE["completion_tokens"]
    assert fast.sdk[-1].usage is not None and fast.sdk[-1].usage.total_tokens == 7


async def test_a_whole_answer_in_one_read_is_sent_as_the_general_path_sends_it(
    both: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read holding every event: the first goes alone, the rest as one piece
    (ChunkEncoder.verbatim_run), the same bytes as each chunk encoded."""
    runs: list[int] = []
    plain = ChunkEncoder.verbatim_run

    def counted(self: ChunkEncoder, items: Any) -> Any:
        run = plain(self, items)
        runs.append(0 if run is None else len(run))
        return run

    monkeypatch.setattr(ChunkEncoder, "verbatim_run", counted)
    EVENTS[:] = openai_style(
        [chunk(""), *(chunk(f"t{n} é \\ ") for n in range(40)), chunk(None, "stop")]
    )
    ONE_WRITE.append(True)
    try:
        fast, general, encoded = await both()
    finally:
        ONE_WRITE.clear()
    assert fast.raw.content == general.raw.content and len(fast.events) == 44
    assert runs == [41, 41]  # raw and SDK: all but the first in one run; usage encoded
    assert encoded == 2  # the usage chunk, in each of the two streams: nothing else


async def test_a_spaced_upstream_keeps_its_spacing_and_the_sdk_parses_the_same(
    both: Any,
) -> None:
    EVENTS[:] = [json.dumps(c) for c in (chunk(""), chunk("a"), chunk(None, "stop"))]
    EVENTS.append(json.dumps({**chunk(), "choices": [], "usage": USAGE}))
    fast, general, encoded = await both()
    assert '"model": "pub"' in fast.raw.text and '"model":"pub"' in general.raw.text
    assert encoded == 2


async def test_chunks_that_may_not_be_what_they_say_take_the_general_path(both: Any) -> None:
    no_object = chunk("b")
    del no_object["object"]
    EVENTS[:] = [
        json.dumps(chunk("")),
        json.dumps(chunk("é")),  # an escape: could be a lone surrogate
        json.dumps(no_object),  # gets its object
        json.dumps(chunk("c", usage=USAGE)),  # usage in a chunk with choices: taken out
        json.dumps(chunk("d"))[:-1] + ', "model": "another"}',  # a second model member
        json.dumps(chunk("e")).replace('"tok"', '"e"') + " ",  # whitespace after it
        json.dumps(chunk("f")),
        json.dumps(chunk(None, "stop")),
    ]
    fast, general, _ = await both()
    general_path = {1, 2, 3, 4, 5, 8, 9}  # and the gateway's usage chunk, [DONE]
    for i, (mine, theirs) in enumerate(zip(fast.events, general.events, strict=True)):
        assert (mine == theirs) == (i in general_path), (i, mine, theirs)


@pytest.mark.parametrize("bad", ["1e999", "NaN", "-Infinity"])
async def test_a_number_that_cannot_be_sent_fails_the_stream_as_before(
    make_settings: Any, upstream_url: str, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    EVENTS[:] = [json.dumps(c) for c in (chunk(""), chunk("a"))]
    EVENTS.append(json.dumps(chunk("b")).replace('"logprobs": null', f'"logprobs": {bad}'))
    try:
        fast, _ = await run(make_settings, upstream_url, monkeypatch, general=False, sdk=False)
        general, _ = await run(make_settings, upstream_url, monkeypatch, general=True, sdk=False)
    finally:
        EVENTS.clear()
    assert json.loads(fast.events[-2])["error"]["type"] == "upstream_error"
    assert fast.events[-2:] == general.events[-2:] and len(fast.events) == 4


async def test_the_batch_path_fails_midway_like_the_chunk_path(
    make_settings: Any, upstream_url: str
) -> None:
    """A provider's batch stream raising after its first batch: the chunks before, then
    the error event, then [DONE]."""

    async def exploding(model: str, request: Any) -> Any:
        yield [(chunk(""), None), (chunk("partial"), None)]
        raise RuntimeError("a bug after the first batch")

    settings = make_settings(
        {
            "providers": {"up": {"type": "openai", "base_url": upstream_url + "/v1"}},
            "models": {"pub": [{"provider": "up", "model": "m"}]},
            "auth": {"api_keys": [KEY]},
            "logging": {"level": "CRITICAL"},
        }
    )
    async with app_client(settings) as http:
        runtime = http._transport.app.state.aiservice  # type: ignore[attr-defined]
        object.__setattr__(runtime.gateway.table.providers["up"], "stream_chat_wire", exploding)
        raw = await http.post(
            "/v1/chat/completions",
            json={"model": "pub", "messages": [{"role": "user", "content": "x"}], "stream": True},
            headers={"authorization": f"Bearer {KEY}"},
        )
    events = [line[6:] for line in raw.text.split("\n\n") if line.startswith("data: ")]
    assert raw.status_code == 200 and events[-1] == "[DONE]"
    assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:2]] == ["", "partial"]
    assert json.loads(events[2])["error"]["type"] == "upstream_error" and len(events) == 4


async def test_a_client_leaving_midway_frees_the_upstream_connection(
    make_settings: Any,
) -> None:
    """Under uvicorn (the disconnect listener): the relay is closed when the client
    goes, and with it the upstream response, which then sees its client go."""
    import asyncio
    import threading

    from aiservice import create_app

    gone = threading.Event()

    async def slow_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(400):  # 20 s unless the gateway lets go
            body = f"data: {json.dumps(chunk(str(n)))}\n\n".encode()
            await send({"type": "http.response.body", "body": body, "more_body": True})
            try:
                async with asyncio.timeout(0.05):
                    if (await receive())["type"] == "http.disconnect":
                        gone.set()
                        return
            except TimeoutError:
                pass
        await send({"type": "http.response.body", "body": b""})

    with serve_app(slow_upstream, lifespan="off") as url:
        settings = make_settings(
            {
                "providers": {"up": {"type": "openai", "base_url": url + "/v1", "timeout": 5}},
                "models": {"pub": [{"provider": "up", "model": "m"}]},
                "auth": {"api_keys": [KEY]},
                "logging": {"level": "CRITICAL"},
            }
        )
        with serve_app(create_app(settings, configure_logs=False)) as gateway:
            body = {"model": "pub", "messages": [{"role": "user", "content": "x"}], "stream": True}
            async with httpx.AsyncClient(base_url=gateway) as client:
                headers = {"authorization": f"Bearer {KEY}"}
                async with client.stream(
                    "POST", "/v1/chat/completions", json=body, headers=headers
                ) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            break  # leave after the first event
            assert await asyncio.to_thread(gone.wait, 5.0), "the upstream was never let go"
