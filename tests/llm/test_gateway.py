"""Gateway reliability and accounting, end to end: SDK → app → real local upstreams."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest

from aiservice import Settings, get_runtime
from aiservice.llm import Gateway, UsageRecord
from aiservice.observability.metrics import REGISTRY
from tests.providers.contract import Failure
from tests.support.llm_servers import ENVIRON, SdkFactory, Upstreams, llm_config

USER = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def gateway_of(http: Any) -> Gateway:
    gateway: Gateway = get_runtime(http._transport.app).gateway
    return gateway


@pytest.fixture
def settings(make_settings: Any, upstreams: Upstreams) -> Settings:
    settings: Settings = make_settings(llm_config(upstreams), ENVIRON)
    return settings


async def test_server_errors_retry_then_fall_back_to_the_next_deployment(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    before = sample("aiservice_llm_fallbacks_total", model="chat", provider="primary")
    upstreams.primary.inject(Failure(status=500))
    async with sdk_for(settings) as (sdk, _):
        raw = await sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
    assert raw.parse().choices[0].message.content == "backup: hi"
    assert raw.headers["x-aiservice-provider"] == "backup"
    assert raw.headers["x-aiservice-model"] == "gpt-backup"
    assert upstreams.primary.calls[CHAT] == 2  # max_retries: 1
    assert sample("aiservice_llm_fallbacks_total", model="chat", provider="primary") == before + 1


async def test_retry_after_is_honoured_before_retrying(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=429, retry_after=0.4), times=1)
    async with sdk_for(settings) as (sdk, _):
        started = time.monotonic()
        completion = await sdk.chat.completions.create(model="chat", messages=USER)
        elapsed = time.monotonic() - started
    assert completion.choices[0].message.content == "echo: hi"
    assert upstreams.primary.calls[CHAT] == 2 and upstreams.backup.calls[CHAT] == 0
    assert elapsed >= 0.4


async def test_a_retry_after_too_long_to_wait_falls_back_at_once(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=429, retry_after=120))
    async with sdk_for(settings) as (sdk, _):
        started = time.monotonic()
        completion = await sdk.chat.completions.create(model="chat", messages=USER)
    assert time.monotonic() - started < 5
    assert completion.choices[0].message.content == "backup: hi"
    assert upstreams.primary.calls[CHAT] == 1


async def test_client_errors_are_neither_retried_nor_fallen_back(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=400, message="unsupported parameter: foo"))
    async with sdk_for(settings) as (sdk, _):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(model="chat", messages=USER)
    assert "unsupported parameter: foo" in info.value.message
    assert upstreams.primary.calls[CHAT] == 1 and upstreams.backup.calls[CHAT] == 0


async def test_a_failing_deployment_is_cooled_down_and_shown_in_readiness(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams, max_retries=0, failure_threshold=2, cooldown_seconds=30)
    upstreams.primary.inject(Failure(status=503))
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, http):
        for _ in range(3):
            completion = await sdk.chat.completions.create(model="chat", messages=USER)
            assert completion.choices[0].message.content == "backup: hi"
        ready = await http.get("/health/ready")
        metrics = (await http.get("/metrics")).text
        gateway_of(http).cooldowns.reset("primary/gpt-test")  # an operator's view of recovery
        recovered = await http.get("/health/ready")
    assert upstreams.primary.calls[CHAT] == 2  # the third request skipped it
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    check = ready.json()["checks"]["llm"]
    assert check["status"] == "fail" and check["required"] is False
    assert "primary/gpt-test" in check["detail"]
    assert (
        'aiservice_llm_deployment_cooled_down{model="gpt-test",provider="primary"} 1.0' in metrics
    )
    assert recovered.json()["checks"]["llm"]["status"] == "ok"


async def test_cooldown_expires_and_a_success_resets_it(
    make_settings: Any, upstreams: Upstreams, sdk_for: SdkFactory
) -> None:
    config = llm_config(upstreams, max_retries=0, failure_threshold=1, cooldown_seconds=0.3)
    upstreams.primary.inject(Failure(status=500), times=1)
    async with sdk_for(make_settings(config, ENVIRON)) as (sdk, http):
        first = await sdk.chat.completions.create(model="chat", messages=USER)
        during = await sdk.chat.completions.create(model="chat", messages=USER)
        await asyncio.sleep(0.35)
        after = await sdk.chat.completions.create(model="chat", messages=USER)
        assert gateway_of(http).cooldowns.cooled() == {}
    assert [c.choices[0].message.content for c in (first, during, after)] == [
        "backup: hi",
        "backup: hi",
        "echo: hi",
    ]


async def test_stream_falls_back_before_the_first_chunk(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(status=502))
    async with sdk_for(settings) as (sdk, _):
        stream = await sdk.chat.completions.create(model="chat", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "backup: hi"


async def test_mid_stream_failure_is_an_error_event_and_never_falls_back(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    upstreams.primary.inject(Failure(kind="drop"))
    received: list[str] = []
    async with sdk_for(settings) as (sdk, http):
        stream = await sdk.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "a long answer"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        with pytest.raises(openai.APIError) as info:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        raw = await http.post(
            CHAT,
            json={"model": "chat", "messages": USER, "stream": True},
            headers={"authorization": "Bearer client-key-00000001"},
        )
    assert "".join(received).startswith("echo:")
    assert "connection failed" in info.value.message
    assert upstreams.backup.calls[CHAT] == 0
    events = [line for line in raw.text.splitlines() if line]
    assert raw.status_code == 200
    assert events[-2].startswith('data: {"error":') and events[-1] == "data: [DONE]"


async def test_usage_and_cost_are_accounted_once_per_call(
    settings: Settings, sdk_for: SdkFactory
) -> None:
    tokens_before = sample(
        "aiservice_llm_tokens_total", provider="primary", model="gpt-test", type="output"
    )
    cost_before = sample("aiservice_llm_cost_usd_total", provider="primary", model="gpt-test")
    records: list[UsageRecord] = []

    async def listener(record: UsageRecord) -> None:
        records.append(record)

    async with sdk_for(settings) as (sdk, http):
        gateway_of(http).accountant.listeners.append(listener)
        plain = await sdk.chat.completions.create(model="chat", messages=USER)
        stream = await sdk.chat.completions.create(model="chat", messages=USER, stream=True)
        [c async for c in stream]
    assert plain.usage is not None
    usage = plain.usage
    assert [(r.kind, r.provider, r.model, r.public_model) for r in records] == [
        ("chat", "primary", "gpt-test", "chat")
    ] * 2
    assert records[0].input_tokens == usage.prompt_tokens
    assert records[1].output_tokens == usage.completion_tokens  # streamed usage too
    assert records[0].principal is not None and records[0].principal.name == "key-0"
    expected_cost = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert records[0].cost_usd == pytest.approx(expected_cost)
    after = sample(
        "aiservice_llm_tokens_total", provider="primary", model="gpt-test", type="output"
    )
    assert after == tokens_before + 2 * usage.completion_tokens
    cost = sample("aiservice_llm_cost_usd_total", provider="primary", model="gpt-test")
    assert cost == pytest.approx(cost_before + 2 * expected_cost)


async def test_request_and_latency_metrics_per_attempt(
    settings: Settings, sdk_for: SdkFactory, upstreams: Upstreams
) -> None:
    labels = {"provider": "primary", "model": "gpt-test"}
    ok = sample("aiservice_llm_requests_total", status="ok", **labels)
    failed = sample("aiservice_llm_requests_total", status="500", **labels)
    ttft = sample("aiservice_llm_time_to_first_token_seconds_count", **labels)
    upstreams.primary.inject(Failure(status=500), times=1)
    async with sdk_for(settings) as (sdk, _):
        await sdk.chat.completions.create(model="chat", messages=USER)
        stream = await sdk.chat.completions.create(model="chat", messages=USER, stream=True)
        [c async for c in stream]
    assert sample("aiservice_llm_requests_total", status="500", **labels) == failed + 1
    assert sample("aiservice_llm_requests_total", status="ok", **labels) == ok + 2
    assert sample("aiservice_llm_time_to_first_token_seconds_count", **labels) == ttft + 1
    assert sample("aiservice_llm_request_duration_seconds_count", **labels) >= 2
