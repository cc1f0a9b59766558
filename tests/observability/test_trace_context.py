"""W3C trace context: taken from the caller, sent to every upstream, stamped on log lines.

Real loopback servers record the headers the gateway sends (LLM upstream, ML functions,
webhook receiver); log lines are rendered by the real JSON formatter.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from aiservice.observability import context
from aiservice.observability.logging import JsonFormatter
from tests.cache.conftest import AUTH, CHAT, app_settings, chat_body
from tests.conftest import JsonLogCapture, MakeSettings, app_client, capture_json_logs
from tests.orchestrator.conftest import orchestrator_app, step
from tests.orchestrator.support import Delivery, Recorder, ml_app, webhook_app
from tests.providers.contract import Failure
from tests.support.servers import serve_app
from tests.support.upstream_fixtures import upstream_fixtures
from tests.support.upstream_openai import OpenAIUpstream

upstream_server, upstream = upstream_fixtures(OpenAIUpstream, scope="module")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
CALLER = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=opaque,other=1"}
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SECRET = "whsec_" + base64.b64encode(b"trace-signing-key-0123456789").decode()


def parts(headers: dict[str, str]) -> tuple[str, str, str]:
    match = TRACEPARENT_RE.match(headers["traceparent"])
    assert match, headers.get("traceparent")
    return match.group(1), match.group(2), match.group(3)


@pytest.fixture
def gcp_logs() -> Iterator[JsonLogCapture]:
    """The aiservice loggers rendered as on Cloud Run with project ``proj-7``."""
    with capture_json_logs(JsonFormatter(project="proj-7")) as handler:
        yield handler


@pytest.fixture
def functions() -> Iterator[tuple[str, Recorder]]:
    """ML functions on loopback recording the headers of every call."""
    recorder = Recorder()
    with serve_app(ml_app(recorder)) as url:
        yield url, recorder


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    deliveries: list[Delivery] = []
    with serve_app(webhook_app(SECRET, deliveries)) as url:
        yield url, deliveries


async def test_chat_upstream_gets_the_callers_trace_with_a_new_span(
    upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    async with app_client(app_settings(upstream_server[1])) as client:
        response = await client.post(CHAT, json=chat_body(), headers={**AUTH, **CALLER})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == TRACE
    [seen] = [s for s in upstream.requests if s.path.endswith("/chat/completions")]
    trace_id, span_id, flags = parts(seen.headers)
    assert (trace_id, flags) == (TRACE, "01")
    assert span_id != PARENT and span_id != "0" * 16
    assert seen.headers["tracestate"] == CALLER["tracestate"]


async def test_without_caller_header_one_new_trace_spans_every_attempt(
    upstream_server: tuple[OpenAIUpstream, str], upstream: OpenAIUpstream
) -> None:
    up = {"type": "openai", "base_url": upstream_server[1] + "/v1", "api_key": "sk-upstream"}
    providers = {"up": {**up, "max_retries": 1, "timeout": 10}}
    settings = app_settings(upstream_server[1], providers=providers)
    upstream.inject(Failure(status=500, retry_after=0), times=1)  # one retry: two calls
    async with app_client(settings) as client:
        first = await client.post(CHAT, json=chat_body("a"), headers=AUTH)
        second = await client.post(CHAT, json=chat_body("b"), headers=AUTH)
    assert first.status_code == second.status_code == 200, first.text
    calls = [parts(s.headers) for s in upstream.requests if s.path.endswith("/chat/completions")]
    assert len(calls) == 3
    # The first request's two attempts share one trace, the second request has its own.
    assert calls[0][0] == calls[1][0] != calls[2][0]
    assert len({c[1] for c in calls}) == 3
    assert "tracestate" not in upstream.requests[0].headers


async def test_log_lines_carry_ids_and_google_trace_fields(
    upstream_server: tuple[OpenAIUpstream, str],
    upstream: OpenAIUpstream,
    gcp_logs: JsonLogCapture,
) -> None:
    async with app_client(app_settings(upstream_server[1])) as client:
        response = await client.post(CHAT, json=chat_body(), headers={**AUTH, **CALLER})
    assert response.status_code == 200
    lines = [r for r in gcp_logs.records if r.get("request_id") == TRACE]
    access = [r for r in lines if r.get("path") == CHAT]
    assert access, gcp_logs.records
    span_ids = {r["span_id"] for r in lines}
    assert len(span_ids) == 1  # one server span for the whole request
    [span_id] = span_ids
    assert span_id != PARENT
    upstream_span = parts(upstream.requests[-1].headers)[1]
    assert upstream_span != span_id  # the outbound call is a child span
    for record in lines:
        assert record["trace_id"] == TRACE
        assert record["logging.googleapis.com/trace"] == f"projects/proj-7/traces/{TRACE}"
        assert record["logging.googleapis.com/spanId"] == span_id
        assert record["logging.googleapis.com/trace_sampled"] is True


def test_without_a_project_no_google_fields_are_written(json_logs: JsonLogCapture) -> None:
    with context.trace(context.start_trace(f"00-{TRACE}-{PARENT}-00")):
        logging.getLogger("aiservice.t").info("inside")
    [record] = json_logs.records
    assert record["trace_id"] == TRACE and len(record["span_id"]) == 16
    assert not [k for k in record if k.startswith("logging.googleapis.com/")]


async def test_cloud_trace_header_is_honoured_when_no_traceparent(
    upstream_server: tuple[OpenAIUpstream, str],
    upstream: OpenAIUpstream,
    gcp_logs: JsonLogCapture,
) -> None:
    cloud = {"x-cloud-trace-context": f"{TRACE.upper()}/1234567890;o=0"}
    async with app_client(app_settings(upstream_server[1])) as client:
        response = await client.post(CHAT, json=chat_body(), headers={**AUTH, **cloud})
    assert response.status_code == 200
    trace_id, _, flags = parts(upstream.requests[-1].headers)
    assert (trace_id, flags) == (TRACE, "00")  # o=0: the caller did not sample
    request_id = response.headers["x-request-id"]
    [access] = [r for r in gcp_logs.records if r.get("request_id") == request_id and "path" in r]
    assert access["logging.googleapis.com/trace"] == f"projects/proj-7/traces/{TRACE}"
    assert access["logging.googleapis.com/trace_sampled"] is False


@pytest.mark.parametrize(
    "header",
    [
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        "garbage",
    ],
)
def test_invalid_traceparent_starts_a_new_trace(header: str) -> None:
    ctx = context.start_trace(header, "k=v")
    assert ctx.trace_id != TRACE and re.fullmatch(r"[0-9a-f]{32}", ctx.trace_id)
    assert ctx.tracestate is None  # meaningless without a valid parent


def test_future_version_with_extra_fields_is_accepted() -> None:
    ctx = context.start_trace(f"01-{TRACE}-{PARENT}-03-more")
    assert (ctx.trace_id, ctx.flags) == (TRACE, "03")


async def test_flow_steps_and_webhook_share_the_trace_and_explicit_header_wins(
    functions: tuple[str, Recorder],
    make_settings: MakeSettings,
    receiver: tuple[str, list[Delivery]],
) -> None:
    base, recorder = functions
    hook_url, deliveries = receiver
    explicit = f"00-{'a' * 32}-{'b' * 16}-01"
    flow = {
        "steps": {
            "a": step(base, "a"),
            "b": {**step(base, "b"), "depends_on": ["a"]},
            "own": {**step(base, "own"), "headers": {"Traceparent": explicit}},
        },
        "webhook": {"url": f"{hook_url}/hook", "secret": "secret://env/WEBHOOK_SECRET"},
    }
    orchestrator = {"default_step_timeout": 5.0, "ssrf_allowlist": ["127.0.0.1"]}
    settings = make_settings(
        {"flows": {"f": flow}, "orchestrator": orchestrator}, {"WEBHOOK_SECRET": SECRET}
    )
    async with orchestrator_app(settings) as (client, _):
        with_caller = await client.post("/orchestrate/f", json={}, headers=CALLER)
        calls_with_caller = list(recorder.calls)
        hooks_with_caller = list(deliveries)
        recorder.reset()
        without = await client.post("/orchestrate/f", json={})
    assert with_caller.status_code == without.status_code == 200, with_caller.text

    def traced(calls: list[Any], hooks: list[Delivery]) -> list[tuple[str, str, str]]:
        steps = [parts(c.headers) for c in calls if c.name != "own"]
        return steps + [parts(d.headers) for d in hooks]

    first = traced(calls_with_caller, hooks_with_caller)
    assert len(first) == 3  # steps a, b and the webhook
    assert {t for t, _, _ in first} == {TRACE}
    assert len({s for _, s, _ in first} | {PARENT}) == 4
    assert all(c.headers["tracestate"] == CALLER["tracestate"] for c in calls_with_caller[:1])
    [own] = [c for c in calls_with_caller if c.name == "own"]
    assert own.headers["traceparent"] == explicit

    second = traced(recorder.calls, deliveries[len(hooks_with_caller) :])
    assert len(second) == 3
    new_traces = {t for t, _, _ in second}
    assert len(new_traces) == 1 and TRACE not in new_traces


def test_gcp_project_setting_falls_back_to_google_cloud_project(
    make_settings: MakeSettings,
) -> None:
    assert make_settings().logging.gcp_project is None
    env = {"GOOGLE_CLOUD_PROJECT": "from-env"}
    assert make_settings(environ=env).logging.gcp_project == "from-env"
    explicit = make_settings(environ={**env, "AISERVICE_LOGGING__GCP_PROJECT": "named"})
    assert explicit.logging.gcp_project == "named"


async def test_background_execution_keeps_the_trace_of_the_request_that_started_it(
    functions: tuple[str, Recorder], make_settings: MakeSettings
) -> None:
    base, recorder = functions
    flow = {"steps": {"late": step(base, "late", delay_ms=50)}}
    settings = make_settings({"flows": {"f": flow}})
    async with orchestrator_app(settings) as (client, _):
        accepted = await client.post(
            "/orchestrate/f", json={}, headers={**CALLER, "Prefer": "respond-async"}
        )
        assert accepted.status_code == 202, accepted.text
        for _ in range(500):  # the step runs after the 202 went out
            if recorder.calls:
                break
            await asyncio.sleep(0.01)
    [call] = recorder.calls
    assert parts(call.headers)[0] == TRACE
