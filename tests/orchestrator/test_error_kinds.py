"""Each error kind is set by the real failure it names, and decides the response status.

Steps call real functions on loopback (slow, failing, unreachable, refused by the SSRF
guard); the stored record is read back from the store to check the kinds it carries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aiservice.orchestrator.kinds import ErrorKind
from aiservice.orchestrator.record import ExecutionRecord
from aiservice.orchestrator.setup import get_orchestrator

from ..support.servers import free_port
from .conftest import FlowSettings, orchestrator_app, step
from .support import Recorder

ML = tuple[str, Recorder]
ONE_ATTEMPT = {"retry": {"max_attempts": 1}}


async def _run(settings: Any, body: Any = None) -> tuple[httpx.Response, ExecutionRecord]:
    """POST /orchestrate/f synchronously; the response and the record as stored."""
    async with orchestrator_app(settings) as (client, runtime):
        response = await client.post("/orchestrate/f", json={} if body is None else body)
        stored = await get_orchestrator(runtime).store.get(response.json()["execution_id"])
    assert stored is not None
    return response, stored


def _assert_failed(response: httpx.Response, record: ExecutionRecord, kind: ErrorKind) -> None:
    doc = response.json()
    assert response.status_code == kind.status, doc
    assert doc["error"]["code"] == kind.value
    assert doc["status"] == "failed" and record.status == "failed"
    assert record.error_kind is kind
    assert "error_kind" not in json.dumps(doc), "kinds are not part of the public document"


async def test_slow_function_is_a_step_timeout(ml: ML, flow_settings: FlowSettings) -> None:
    base, _ = ml
    slow = {**step(base, "s", slow=1, delay_ms=2000), "timeout": 0.1, **ONE_ATTEMPT}
    response, record = await _run(flow_settings({"f": {"steps": {"s": slow}}}))
    _assert_failed(response, record, ErrorKind.STEP_TIMEOUT)
    assert response.status_code == 504
    assert record.steps["s"].error_kind is ErrorKind.STEP_TIMEOUT


async def test_flow_deadline_is_a_flow_timeout(ml: ML, flow_settings: FlowSettings) -> None:
    base, _ = ml
    flow = {"timeout": 0.2, "steps": {"s": step(base, "s", slow=1, delay_ms=2000)}}
    response, record = await _run(flow_settings({"f": flow}))
    _assert_failed(response, record, ErrorKind.FLOW_TIMEOUT)
    state = record.steps["s"]
    # Cut off by the flow deadline, or its attempt's budget ran out at the same instant.
    assert (state.status, state.error_kind) in (
        ("cancelled", ErrorKind.CANCELLED),
        ("failed", ErrorKind.STEP_TIMEOUT),
    )


async def test_error_status_is_upstream_status_and_fails_the_flow(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    failing = {**step(base, "s", status=500), **ONE_ATTEMPT}
    response, record = await _run(flow_settings({"f": {"steps": {"s": failing}}}))
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert response.status_code == 502
    assert record.steps["s"].error_kind is ErrorKind.UPSTREAM_STATUS
    assert record.steps["s"].http_status == 500


async def test_function_that_times_out_itself_is_not_a_timeout(
    ml: ML, flow_settings: FlowSettings
) -> None:
    """Only our own clock makes a timeout; a 500 whose body says "timed out" is a 502."""
    base, _ = ml
    # The function echoes the body into its error text.
    failing = {**step(base, "s", status=500), "body": {"why": "upstream timed out"}}
    response, record = await _run(flow_settings({"f": {"steps": {"s": failing}}}))
    assert "timed out" in response.json()["error"]["message"]
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.UPSTREAM_STATUS


async def test_closed_port_is_upstream_unreachable(flow_settings: FlowSettings) -> None:
    dead = {"url": f"http://127.0.0.1:{free_port()}/fn/s", **ONE_ATTEMPT}
    response, record = await _run(flow_settings({"f": {"steps": {"s": dead}}}))
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.UPSTREAM_UNREACHABLE
    assert record.steps["s"].attempts == 1


async def test_answer_over_the_body_bound_is_response_too_large(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    # The stand-in echoes the step's body: 2 KiB in, an answer over the 1 KiB bound out.
    big = {**step(base, "s"), "body": {"pad": "x" * 2048}, "retry": {"max_attempts": 3}}
    settings = flow_settings({"f": {"steps": {"s": big}}}, limits={"max_upstream_body_bytes": 1024})
    response, record = await _run(settings)
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.RESPONSE_TOO_LARGE
    assert record.steps["s"].attempts == 1  # as large the next time: not retried
    assert len(recorder.by_name("s")) == 1


async def test_url_refused_by_the_ssrf_guard_is_url_not_allowed(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    built = {"input": {"required": ["target"]}, "steps": {"s": {"url": "${input.target}"}}}
    response, record = await _run(flow_settings({"f": built}), {"target": f"{base}/fn/s"})
    # The step's refusal fails the flow (502); url_not_allowed is the step's kind.
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.URL_NOT_ALLOWED
    assert "SSRFError" in (record.steps["s"].error or "")
    assert recorder.calls == []


async def test_credentials_that_cannot_be_loaded_are_auth_failed(
    ml: ML, flow_settings: FlowSettings, tmp_path: Path
) -> None:
    base, recorder = ml
    missing = str(tmp_path / "no-such-key.json")
    signed = {**step(base, "s"), "auth": {"type": "google_id_token", "credentials_file": missing}}
    response, record = await _run(flow_settings({"f": {"steps": {"s": signed}}}))
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.AUTH_FAILED
    assert recorder.calls == []


async def test_url_no_parser_accepts_is_request_not_built(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": {"url": f"{base}/fn/" + "${input.name}"}}}
    response, record = await _run(flow_settings({"f": flow}), {"name": "a\x00b"})
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["s"].error_kind is ErrorKind.REQUEST_NOT_BUILT
    assert recorder.calls == []


async def test_steps_stopped_by_a_failure_are_cancelled(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    flow = {
        "steps": {
            "bad": {**step(base, "bad", status=400, delay_ms=100)},
            "slow": step(base, "slow", slow=1, delay_ms=3000),
            "after": {**step(base, "after"), "depends_on": ["bad"]},
        }
    }
    response, record = await _run(flow_settings({"f": flow}))
    _assert_failed(response, record, ErrorKind.STEP_FAILED)
    assert record.steps["bad"].error_kind is ErrorKind.UPSTREAM_STATUS
    for sid in ("slow", "after"):  # in flight, and never started
        assert record.steps[sid].status == "cancelled"
        assert record.steps[sid].error_kind is ErrorKind.CANCELLED


async def test_shutdown_mid_run_is_cancelled(
    ml: ML, flow_settings: FlowSettings, redis_cache: dict[str, Any]
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": step(base, "s", slow=1, delay_ms=3000)}}
    settings = flow_settings({"f": flow}, cache=redis_cache)
    async with orchestrator_app(settings) as (client, _):
        accepted = await client.post("/orchestrate/f?mode=async", json={})
        deadline = time.monotonic() + 5
        while not recorder.by_name("s") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    async with orchestrator_app(settings) as (_, runtime):
        record = await get_orchestrator(runtime).store.get(accepted.json()["execution_id"])
    assert record is not None and record.status == "failed"
    assert record.error_kind is ErrorKind.CANCELLED
    assert record.steps["s"].error_kind is ErrorKind.CANCELLED


async def test_run_without_a_live_worker_is_worker_lost(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    async with orchestrator_app(flow_settings({"f": {"steps": {"s": step(base, "s")}}})) as (
        client,
        runtime,
    ):
        orchestrator = get_orchestrator(runtime)
        record = orchestrator._new_record(orchestrator.flow("f"), {}, "anonymous", "running")
        await orchestrator.store.save(record)  # as left by a worker that died: no lease
        doc = (await client.get(f"/executions/{record.execution_id}")).json()
        stored = await orchestrator.store.get(record.execution_id)
    assert doc["status"] == "failed"
    assert stored is not None and stored.error_kind is ErrorKind.WORKER_LOST
    assert stored.steps["s"].error_kind is ErrorKind.CANCELLED


async def test_too_many_worker_starts_is_worker_lost(ml: ML, flow_settings: FlowSettings) -> None:
    base, recorder = ml
    settings = flow_settings(
        {"f": {"steps": {"s": step(base, "s")}}}, orchestrator={"max_worker_attempts": 2}
    )
    async with orchestrator_app(settings) as (_, runtime):
        orchestrator = get_orchestrator(runtime)
        record = orchestrator._new_record(orchestrator.flow("f"), {}, "anonymous", "queued")
        await orchestrator.store.save(record)
        for _ in range(2):  # two earlier workers started it and died
            await orchestrator.store.count_attempt(record.execution_id)
        await orchestrator.resume(record.execution_id)
        stored = await orchestrator.store.get(record.execution_id)
    assert stored is not None and stored.error_kind is ErrorKind.WORKER_LOST
    assert stored.error == "gave up after 2 worker attempts"
    assert recorder.calls == []


async def test_resumed_execution_of_a_removed_flow_is_flow_gone(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    async with orchestrator_app(flow_settings({"f": {"steps": {"s": step(base, "s")}}})) as (
        _,
        runtime,
    ):
        orchestrator = get_orchestrator(runtime)
        orphan = ExecutionRecord(flow="renamed_since", status="queued", principal="anonymous")
        await orchestrator.store.save(orphan)
        await orchestrator.resume(orphan.execution_id)
        stored = await orchestrator.store.get(orphan.execution_id)
    assert stored is not None and stored.status == "failed"
    assert stored.error_kind is ErrorKind.FLOW_GONE


@pytest.fixture
def missing_queue() -> Iterator[str]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="orchestrator")["QueueUrl"]
        yield url.replace("orchestrator", "deleted-queue")


async def test_queue_that_refuses_the_message_is_queue_unavailable(
    ml: ML, flow_settings: FlowSettings, missing_queue: str
) -> None:
    base, recorder = ml
    settings = flow_settings(
        {"f": {"steps": {"s": step(base, "s")}}},
        {"AWS_REGION": "us-east-1"},
        orchestrator={"queue_url": missing_queue},
    )
    key = {"Idempotency-Key": "k1"}
    async with orchestrator_app(settings) as (client, runtime):
        response = await client.post("/orchestrate/f?mode=async", json={}, headers=key)
        # The key was bound before the send failed: asking again finds the record.
        again = await client.post("/orchestrate/f?mode=async", json={}, headers=key)
        stored = await get_orchestrator(runtime).store.get(again.json()["execution_id"])
    kind = ErrorKind.QUEUE_UNAVAILABLE
    assert response.status_code == kind.status == 503
    assert response.json()["error"]["code"] == kind.value
    assert again.json()["status"] == "failed"
    assert stored is not None and stored.error_kind is kind
    assert recorder.calls == []


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


async def _idempotency_key_reused(client: httpx.AsyncClient) -> httpx.Response:
    await client.post("/orchestrate/f", json={"user_id": "u1"}, headers={"Idempotency-Key": "k"})
    return await client.post(
        "/orchestrate/f", json={"user_id": "u2"}, headers={"Idempotency-Key": "k"}
    )


REQUESTS: dict[ErrorKind, Send] = {
    ErrorKind.INVALID_INPUT: lambda c: c.post("/orchestrate/f", json={"user_id": 3}),
    ErrorKind.FLOW_NOT_FOUND: lambda c: c.post("/orchestrate/nope", json={}),
    ErrorKind.EXECUTION_NOT_FOUND: lambda c: c.get("/executions/0123"),
    ErrorKind.IDEMPOTENCY_KEY_REUSED: _idempotency_key_reused,
    ErrorKind.URL_NOT_ALLOWED: lambda c: c.post(
        "/orchestrate/f", json={"user_id": "u1", "callback_url": "http://169.254.169.254/x"}
    ),
}


@pytest.mark.parametrize("kind", list(REQUESTS), ids=str)
async def test_refused_request_answers_its_kinds_status(
    ml: ML, flow_settings: FlowSettings, kind: ErrorKind
) -> None:
    base, recorder = ml
    flow = {
        "input": {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
        "steps": {"s": step(base, "s")},
        "webhook": {"url": "${input.callback_url}"},
    }
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        response = await REQUESTS[kind](client)
    assert response.status_code == kind.status, response.text
    assert response.json()["error"]["code"] == kind.value
    if kind is not ErrorKind.IDEMPOTENCY_KEY_REUSED:  # its first request ran the flow
        assert recorder.calls == []


async def test_state_backend_outage_is_state_unavailable(
    ml: ML, flow_settings: FlowSettings
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    flows = {"f": {"steps": {"s": step(ml[0], "s")}}}
    settings = flow_settings(flows, cache={"backend": "redis", "url": dead, "timeout_ms": 100})
    async with orchestrator_app(settings) as (client, _):
        response = await client.post("/orchestrate/f", json={})
    kind = ErrorKind.STATE_UNAVAILABLE
    assert response.status_code == kind.status == 503
    assert response.json()["error"]["code"] == kind.value
