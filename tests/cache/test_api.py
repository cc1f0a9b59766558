"""The cache, coalescing and rate limits through the OpenAI-compatible API."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from tests.conftest import app_client
from tests.providers.contract import Failure
from tests.support.upstream_openai import OpenAIUpstream

from .conftest import AUTH, CHAT, EMBED, TOOLS, chat_body, sse_lines


async def test_hundred_concurrent_identical_requests_make_one_upstream_call(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    upstream.inject(Failure(kind="slow"), times=1)  # the one upstream call takes 2.5 s
    async with app_client(settings_for()) as client:
        responses = await asyncio.gather(
            *(client.post(CHAT, json=chat_body(), headers=AUTH) for _ in range(100))
        )
    assert upstream.calls[CHAT] == 1
    assert all(r.status_code == 200 for r in responses)
    statuses = Counter(r.headers["x-aiservice-cache"] for r in responses)
    assert statuses == {"miss": 1, "coalesced": 99}
    assert len({r.text for r in responses}) == 1
    assert responses[0].headers["x-aiservice-provider"] == "up"


async def test_concurrent_streams_share_one_call_and_receive_the_same_chunks(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    async with app_client(settings_for()) as client:
        results = await asyncio.gather(
            *(sse_lines(client, chat_body(tools=TOOLS)) for _ in range(20))
        )
    assert upstream.calls[CHAT] == 1
    first = results[0][1]
    assert all(chunks == first for _, chunks in results)
    assert Counter(status for status, _ in results)["miss"] == 1


async def test_streamed_answer_replays_chunk_by_chunk_with_tool_call_deltas(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    body = chat_body("Paris", tools=TOOLS, stream_options={"include_usage": True})
    async with app_client(settings_for()) as client:
        status1, recorded = await sse_lines(client, body)
        status2, replayed = await sse_lines(client, body)
        plain = await client.post(CHAT, json=chat_body("Paris", tools=TOOLS), headers=AUTH)
    assert (status1, status2) == ("miss", "hit")
    assert replayed == recorded
    deltas = [c["choices"][0]["delta"] for c in recorded if c["choices"]]
    assert sum("tool_calls" in d for d in deltas) >= 3  # name, then argument pieces
    assert recorded[-1]["usage"]["total_tokens"] > 0
    # The non-stream request is answered from the streamed entry.
    assert plain.headers["x-aiservice-cache"] == "hit"
    call = plain.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert upstream.calls[CHAT] == 1


async def test_non_stream_entry_answers_a_stream_request(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    async with app_client(settings_for()) as client:
        plain = await client.post(CHAT, json=chat_body("bonjour"), headers=AUTH)
        status, chunks = await sse_lines(client, chat_body("bonjour"))
    assert status == "hit" and upstream.calls[CHAT] == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain.json()["choices"][0]["message"]["content"] == "echo: bonjour"
    assert all("usage" not in c for c in chunks)  # not asked for: dropped by the API


async def test_request_headers_control_the_cache(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    async with app_client(settings_for()) as client:
        stored = await client.post(CHAT, json=chat_body(), headers=AUTH)
        fresh = await client.post(
            CHAT, json=chat_body(), headers={**AUTH, "cache-control": "no-cache"}
        )
        hit = await client.post(CHAT, json=chat_body(), headers=AUTH)
        bad = await client.post(
            CHAT, json=chat_body(), headers={**AUTH, "x-aiservice-cache-ttl": "never"}
        )
    assert [r.headers["x-aiservice-cache"] for r in (stored, fresh, hit)] == [
        "miss",
        "bypass",
        "hit",
    ]
    assert upstream.calls[CHAT] == 2
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cache_ttl"


async def test_deterministic_mode_caches_only_repeatable_requests(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    async with app_client(settings_for(cache={"mode": "deterministic"})) as client:
        sampled = [
            await client.post(CHAT, json=chat_body(temperature=0.8), headers=AUTH) for _ in range(2)
        ]
        greedy = [
            await client.post(CHAT, json=chat_body(temperature=0), headers=AUTH) for _ in range(2)
        ]
    assert [r.headers["x-aiservice-cache"] for r in sampled] == ["bypass", "bypass"]
    assert [r.headers["x-aiservice-cache"] for r in greedy] == ["miss", "hit"]
    assert upstream.calls[CHAT] == 3


async def test_upstream_error_is_not_cached(upstream: OpenAIUpstream, settings_for: Any) -> None:
    upstream.inject(Failure(status=500), times=1)
    async with app_client(settings_for()) as client:
        failed = await client.post(CHAT, json=chat_body(), headers=AUTH)
        retried = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert failed.status_code == 502
    assert retried.status_code == 200 and retried.headers["x-aiservice-cache"] == "miss"


async def test_embeddings_are_cached_per_item_and_only_misses_go_upstream(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    settings = settings_for(embeddings={"batch_size": 2, "concurrency": 2, "max_retries": 0})
    async with app_client(settings) as client:
        first = await client.post(
            EMBED, json={"model": "embed", "input": ["a", "b", "c"]}, headers=AUTH
        )
        upstream.requests.clear()
        second = await client.post(
            EMBED, json={"model": "embed", "input": ["c", "d", "a", "d"]}, headers=AUTH
        )
        sent = [r.body["input"] for r in upstream.requests if r.path == EMBED]
        third = await client.post(EMBED, json={"model": "embed", "input": ["d", "b"]}, headers=AUTH)
    assert first.headers["x-aiservice-cache"] == "miss"
    assert upstream.calls[EMBED] == 3  # 2 batches for a, b, c; then d alone
    assert sent == [["d"]]
    vectors = {t: d["embedding"] for t, d in zip("abc", first.json()["data"], strict=True)}
    again = [d["embedding"] for d in second.json()["data"]]
    assert again[0] == vectors["c"] and again[2] == vectors["a"] and again[1] == again[3]
    assert [d["index"] for d in second.json()["data"]] == [0, 1, 2, 3]
    assert third.headers["x-aiservice-cache"] == "hit"
    assert third.json()["data"][1]["embedding"] == vectors["b"]


async def test_rate_limit_returns_429_with_headers(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    async with app_client(settings_for(limits={"requests_per_minute": 2})) as client:
        ok = [await client.post(CHAT, json=chat_body(), headers=AUTH) for _ in range(2)]
        limited = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["1", "0"]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"


async def test_daily_budget_is_charged_from_upstream_usage(
    upstream: OpenAIUpstream, settings_for: Any
) -> None:
    # gpt-test costs $1000 per million tokens: one small call (~4 tokens) spends ~$0.004.
    limits = {"budget_usd_per_day": 0.002}
    async with app_client(settings_for(limits=limits)) as client:
        first = await client.post(CHAT, json=chat_body("one"), headers=AUTH)
        over = await client.post(CHAT, json=chat_body("two"), headers=AUTH)
    assert first.status_code == 200
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "budget_exceeded"
    assert upstream.calls[CHAT] == 1
