"""OpenTelemetry tracing end to end: spans exported over OTLP/HTTP to a loopback receiver.

The upstream is the loopback OpenAI-wire server, the ML functions and the webhook receiver
are real HTTP servers; the spans are decoded from the protobuf the SDK's exporter sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from aiservice import Settings
from tests.cache.conftest import AUTH, CHAT, app_settings, chat_body
from tests.conftest import MakeSettings, app_client
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.orchestrator.conftest import orchestrator_app, step
from tests.orchestrator.support import Delivery, Recorder, ml_app, webhook_app
from tests.providers.contract import Failure
from tests.support.servers import serve_app
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_openai import OpenAIUpstream

upstream_server, upstream = upstream_fixtures(OpenAIUpstream, scope="module")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CALLER = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SECRET = "whsec_dHJhY2luZy1zaWduaW5nLWtleS0wMTIzNDU2Nzg5"


@pytest.fixture(scope="module")
def _receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


@pytest.fixture
def otlp(_receiver: OtlpReceiver) -> OtlpReceiver:
    _receiver.reset()
    return _receiver


def traced(receiver: OtlpReceiver, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "exporter": {"endpoint": receiver.url}, **extra}


def parts(headers: dict[str, str]) -> tuple[str, str]:
    match = TRACEPARENT_RE.match(headers["traceparent"])
    assert match, headers.get("traceparent")
    return match.group(1), match.group(2)


def only(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_id == parent.span_id]


async def test_chat_request_is_one_trace_with_server_cache_and_genai_spans(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    settings = app_settings(upstream_server[1], tracing=traced(otlp, service_name="gw"))
    async with app_client(settings) as client:
        response = await client.post(CHAT, json=chat_body(), headers={**AUTH, **CALLER})
    assert response.status_code == 200, response.text
    spans = otlp.trace(TRACE)
    server = only(spans, "POST /v1/chat/completions")
    assert server.kind == "server" and server.parent_id == PARENT  # the caller's span
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.request.method"] == "POST"
    assert server.resource["service.name"] == "gw"
    cache = only(spans, "cache lookup")
    assert cache.attributes["aiservice.cache.hit"] is False
    llm = only(spans, "chat gpt-test")
    assert llm.kind == "client"
    assert llm.parent_id == server.span_id == cache.parent_id
    usage = response.json()["usage"]
    assert llm.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-test",
        "gen_ai.response.model": "gpt-test",  # the upstream's answer, not the public name
        "gen_ai.response.id": response.json()["id"],
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": usage["completion_tokens"],
        "aiservice.provider": "up",
        "aiservice.attempt": 1,
    }
    # The upstream got the trace with the LLM span as its parent.
    [seen] = [s for s in upstream.requests if s.path.endswith("/chat/completions")]
    assert parts(seen.headers) == (TRACE, llm.span_id)
    assert {s.trace_id for s in otlp.spans} == {TRACE}  # one trace for the request


async def test_cache_hit_span_and_no_upstream_span(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    settings = app_settings(upstream_server[1], tracing=traced(otlp))
    body = chat_body("cache me")
    async with app_client(settings) as client:
        first = await client.post(CHAT, json=body, headers=AUTH)
        second = await client.post(CHAT, json=body, headers=AUTH)
    assert first.status_code == second.status_code == 200
    servers = [s for s in otlp.spans if s.kind == "server"]
    assert len(servers) == 2 and servers[0].trace_id != servers[1].trace_id
    hit = otlp.trace(servers[1].trace_id)
    assert only(hit, "cache lookup").attributes["aiservice.cache.hit"] is True
    assert not [s for s in hit if s.name.startswith("chat ")]
    assert [s.name for s in otlp.trace(servers[0].trace_id) if s.name.startswith("chat ")]


async def test_retry_and_fallback_attempts_are_spans_with_error_type(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    url = upstream_server[1] + "/v1"
    providers = {
        "up": {"type": "openai", "base_url": url, "api_key": "sk-a", "max_retries": 1},
        "backup": {"type": "openai", "base_url": url, "api_key": "sk-b", "max_retries": 0},
    }
    models = {
        "chat": [
            {"provider": "up", "model": "gpt-test"},
            {"provider": "backup", "model": "gpt-test"},
        ]
    }
    settings = app_settings(
        upstream_server[1],
        providers=providers,
        models=models,
        tracing=traced(otlp),
        cache={"mode": "off"},
    )
    upstream.inject(Failure(status=500, retry_after=0), times=2)  # both attempts of "up"
    async with app_client(settings) as client:
        response = await client.post(CHAT, json=chat_body(), headers={**AUTH, **CALLER})
    assert response.status_code == 200, response.text
    spans = otlp.trace(TRACE)
    attempts = [s for s in spans if s.name == "chat gpt-test"]
    described = [
        (
            s.attributes["aiservice.provider"],
            s.attributes["aiservice.attempt"],
            s.attributes.get("error.type"),
            s.status,
        )
        for s in attempts
    ]
    assert sorted(described) == [("backup", 1, None, 0), ("up", 1, "500", 2), ("up", 2, "500", 2)]
    server = only(spans, "POST /v1/chat/completions")
    assert all(s.parent_id == server.span_id for s in attempts)
    # Each upstream call named its own attempt span as the parent.
    sent = {parts(s.headers) for s in upstream.requests if s.path.endswith("/chat/completions")}
    assert sent == {(TRACE, s.span_id) for s in attempts}


async def test_embeddings_span_counts_input_tokens(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    settings = app_settings(upstream_server[1], tracing=traced(otlp))
    async with app_client(settings) as client:
        response = await client.post(
            "/v1/embeddings", json={"model": "embed", "input": ["a b", "c"]}, headers=AUTH
        )
    assert response.status_code == 200, response.text
    [span] = [s for s in otlp.spans if s.name == "embeddings embed-test"]
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == response.json()["usage"]["prompt_tokens"]


async def test_upstream_failure_marks_server_span(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    settings = app_settings(upstream_server[1], tracing=traced(otlp), cache={"mode": "off"})
    upstream.inject(Failure(status=503, retry_after=0), times=1)
    async with app_client(settings) as client:
        response = await client.post(CHAT, json=chat_body(), headers=AUTH)
    assert response.status_code >= 500
    [server] = [s for s in otlp.spans if s.kind == "server"]
    assert server.status == 2 and server.attributes["http.response.status_code"] >= 500
    [llm] = [s for s in otlp.spans if s.name == "chat gpt-test"]
    assert llm.attributes["error.type"] == "503" and llm.status == 2


@pytest.fixture
def functions() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serve_app(ml_app(recorder)) as url:
        yield url, recorder


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[Delivery]]]:
    deliveries: list[Delivery] = []
    with serve_app(webhook_app(SECRET, deliveries)) as url:
        yield url, deliveries


def flow_settings(
    make_settings: MakeSettings, otlp: OtlpReceiver, base: str, hook: str, **orch: Any
) -> Settings:
    flow = {
        "steps": {"a": step(base, "a"), "b": {**step(base, "b"), "depends_on": ["a"]}},
        "webhook": {"url": f"{hook}/hook", "secret": "secret://env/WEBHOOK_SECRET"},
    }
    orchestrator = {"default_step_timeout": 5.0, "ssrf_allowlist": ["127.0.0.1"], **orch}
    data = {"flows": {"f": flow}, "orchestrator": orchestrator, "tracing": traced(otlp)}
    return make_settings(data, {"WEBHOOK_SECRET": SECRET})


async def test_flow_steps_and_webhook_are_spans_and_functions_get_their_ids(
    otlp: OtlpReceiver,
    functions: tuple[str, Recorder],
    hooks: tuple[str, list[Delivery]],
    make_settings: MakeSettings,
) -> None:
    base, recorder = functions
    settings = flow_settings(make_settings, otlp, base, hooks[0])
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate/f", json={}, headers=CALLER)
    assert response.status_code == 200, response.text
    spans = otlp.trace(TRACE)
    server = only(spans, "POST /orchestrate/{flow}")
    execution = only(spans, "execution f")
    assert execution.parent_id == server.span_id
    step_a, step_b, webhook = only(spans, "step a"), only(spans, "step b"), only(spans, "webhook")
    assert {s.parent_id for s in (step_a, step_b, webhook)} == {execution.span_id}
    assert step_a.kind == step_b.kind == webhook.kind == "client"
    assert step_a.attributes["aiservice.flow"] == "f"
    assert step_a.attributes["http.response.status_code"] == 200
    assert step_a.attributes["server.address"] == "127.0.0.1"
    assert webhook.attributes["aiservice.attempts"] == 1
    sent = {c.name: parts(c.headers) for c in recorder.calls}
    assert sent == {"a": (TRACE, step_a.span_id), "b": (TRACE, step_b.span_id)}
    [delivery] = hooks[1]
    assert parts(delivery.headers) == (TRACE, webhook.span_id)


async def test_a_worker_resuming_an_execution_continues_the_request_trace(
    otlp: OtlpReceiver,
    functions: tuple[str, Recorder],
    hooks: tuple[str, list[Delivery]],
    make_settings: MakeSettings,
) -> None:
    """The record stores the trace; resuming it outside any request (a queue worker)
    parents the execution to the request's server span."""
    import asyncio
    import contextvars

    from aiservice.orchestrator.record import ExecutionRecord

    base, recorder = functions
    settings = flow_settings(make_settings, otlp, base, hooks[0])
    async with orchestrator_app(settings) as (client, runtime):
        orchestrator = runtime.orchestrator
        assert orchestrator is not None
        accepted = await client.post(
            "/orchestrate/f", json={}, headers={**CALLER, "Prefer": "respond-async"}
        )
        assert accepted.status_code == 202, accepted.text
        execution_id = accepted.json()["execution_id"]
        for _ in range(500):
            stored = await orchestrator.store.get(execution_id)
            if stored is not None and stored.finished:
                break
            await asyncio.sleep(0.01)
        assert stored is not None and stored.trace is not None
        assert "_trace" in stored.dump().decode() and "trace" not in stored.public()
        # The same record resumed by a worker: reset it and run it in an empty context.
        again = ExecutionRecord.load(stored.dump())
        again.status, again.execution_id = "queued", execution_id + "x"
        for state in again.steps.values():
            state.status = "pending"
        await orchestrator.store.save(again)
        task = asyncio.get_running_loop().create_task(
            orchestrator.resume(again.execution_id), context=contextvars.Context()
        )
        await task
    server = only(otlp.trace(TRACE), "POST /orchestrate/{flow}")
    executions = [s for s in otlp.trace(TRACE) if s.name == "execution f"]
    assert len(executions) == 2
    assert {s.parent_id for s in executions} == {server.span_id}
    assert {parts(c.headers)[0] for c in recorder.calls} == {TRACE}


def test_old_records_without_trace_still_load() -> None:
    from aiservice.orchestrator.record import ExecutionRecord

    record = ExecutionRecord.load(b'{"execution_id": "e1", "flow": "f", "status": "running"}')
    assert record.trace is None


async def test_streamed_chat_attempt_span_has_the_model_and_the_server_span_the_stream(
    otlp: OtlpReceiver, upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    settings = app_settings(upstream_server[1], tracing=traced(otlp), cache={"mode": "off"})
    body = chat_body("stream me", stream=True)
    async with app_client(settings) as client:
        async with client.stream("POST", CHAT, json=body, headers={**AUTH, **CALLER}) as response:
            assert response.status_code == 200
            text = "".join([chunk async for chunk in response.aiter_text()])
    assert "[DONE]" in text
    spans = otlp.trace(TRACE)
    server = only(spans, "POST /v1/chat/completions")
    llm = only(spans, "chat gpt-test")
    assert llm.parent_id == server.span_id
    assert llm.attributes["gen_ai.response.model"] == "gpt-test"
    assert "gen_ai.usage.input_tokens" not in llm.attributes  # counted at the stream's end
    [seen] = [s for s in upstream.requests if s.path.endswith("/chat/completions")]
    assert parts(seen.headers) == (TRACE, llm.span_id)
