"""Async executions and polling, idempotency keys, signed webhooks and the SSRF guard."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aiservice.orchestrator.setup import get_orchestrator

from ..support.servers import serve_app
from .conftest import FlowSettings, orchestrator_app, step
from .support import Delivery, Recorder, webhook_app

ML = tuple[str, Recorder]
SECRET = "whsec_" + base64.b64encode(b"test-signing-key-0123456789").decode()
ENV = {"WEBHOOK_SECRET": SECRET}


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Delivery]]]:
    deliveries: list[Delivery] = []
    with serve_app(webhook_app(SECRET, deliveries)) as url:
        yield url, deliveries


async def poll(client: Any, location: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        doc: dict[str, Any] = (await client.get(location)).json()
        if doc["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return doc
        await asyncio.sleep(0.02)


async def test_async_returns_202_and_polling_shows_progress(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    flow = {
        "steps": {
            "fast": step(base, "fast"),
            "slow": {**step(base, "slow", delay_ms=600), "depends_on": ["fast"]},
        }
    }
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        accepted = await client.post("/orchestrate/f", json={}, headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202
        execution_id = accepted.json()["execution_id"]
        assert accepted.headers["location"] == f"/executions/{execution_id}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the first step is recorded as done
            midway = (await client.get(accepted.headers["location"])).json()
            if midway["steps"]["fast"]["status"] != "pending":
                break
            await asyncio.sleep(0.01)
        final = await poll(client, accepted.headers["location"])
        via_query = await client.post("/orchestrate/f?mode=async", json={})
        assert via_query.status_code == 202
    assert midway["status"] == "running"
    assert midway["steps"]["fast"]["status"] == "succeeded"
    assert final["status"] == "succeeded"
    assert final["output"]["slow"]["name"] == "slow"
    assert "_input" not in final and "_principal" not in final


async def test_idempotency_key_returns_the_same_execution(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": step(base, "s")}}
    headers = {"Idempotency-Key": "order-42"}
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        first = await client.post("/orchestrate/f", json={"a": 1}, headers=headers)
        second = await client.post("/orchestrate/f", json={"a": 1}, headers=headers)
        reused = await client.post("/orchestrate/f", json={"a": 2}, headers=headers)
        other = await client.post(
            "/orchestrate/f", json={"a": 1}, headers={"Idempotency-Key": "order-43"}
        )
    assert first.status_code == second.status_code == 200
    assert first.json()["execution_id"] == second.json()["execution_id"]
    assert other.json()["execution_id"] != first.json()["execution_id"]
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(recorder.by_name("s")) == 2  # first and "order-43" only


async def test_concurrent_sync_requests_with_one_key_share_one_run(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": step(base, "s", delay_ms=150)}}
    headers = {"Idempotency-Key": "same"}
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        first, second = await asyncio.gather(
            client.post("/orchestrate/f", json={}, headers=headers),
            client.post("/orchestrate/f", json={}, headers=headers),
        )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()  # the second waited for the first's result
    assert first.json()["status"] == "succeeded"
    assert len(recorder.by_name("s")) == 1


async def test_async_idempotent_retry_while_running_returns_same_id(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": step(base, "s", delay_ms=150)}}
    headers = {"Idempotency-Key": "k", "Prefer": "respond-async"}
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        first = await client.post("/orchestrate/f", json={}, headers=headers)
        second = await client.post("/orchestrate/f", json={}, headers=headers)
        await poll(client, first.headers["location"])
    assert first.status_code == second.status_code == 202
    assert first.json()["execution_id"] == second.json()["execution_id"]
    assert len(recorder.by_name("s")) == 1


async def test_executions_are_private_to_their_caller(ml: ML, flow_settings: FlowSettings) -> None:
    base, _ = ml
    settings = flow_settings(
        {"f": {"steps": {"s": step(base, "s")}}},
        auth={"keys": {"alice": {"key": "ka"}, "bob": {"key": "kb"}}, "min_key_length": 1},
    )
    async with orchestrator_app(settings) as (client, _):
        created = await client.post("/orchestrate/f", json={}, headers={"X-API-Key": "ka"})
        location = f"/executions/{created.json()['execution_id']}"
        mine = await client.get(location, headers={"X-API-Key": "ka"})
        theirs = await client.get(location, headers={"X-API-Key": "kb"})
        missing = await client.get("/executions/nope", headers={"X-API-Key": "ka"})
    assert mine.status_code == 200
    assert theirs.status_code == 404
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "execution_not_found"


async def test_running_execution_without_live_worker_is_reported_failed(
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
    assert doc["status"] == "failed"
    assert "stopped" in doc["error"]
    assert doc["steps"]["s"]["status"] == "cancelled"


async def test_queued_execution_is_failed_only_after_a_lease_period(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    settings = flow_settings(
        {"f": {"steps": {"s": step(base, "s")}}}, orchestrator={"lease_seconds": 1.0}
    )
    async with orchestrator_app(settings) as (client, runtime):
        orchestrator = get_orchestrator(runtime)
        record = orchestrator._new_record(orchestrator.flow("f"), {}, "anonymous", "queued")
        await orchestrator.store.save(record)  # its worker never started
        location = f"/executions/{record.execution_id}"
        fresh = (await client.get(location)).json()  # well inside the lease, even on a busy CI
        await asyncio.sleep(1.1)
        later = (await client.get(location)).json()
    assert fresh["status"] == "queued"
    assert later["status"] == "failed"


async def test_shutdown_cancels_background_execution_and_marks_it_failed(
    ml: ML, flow_settings: FlowSettings, redis_cache: dict[str, Any]
) -> None:
    base, recorder = ml
    flow = {"steps": {"s": step(base, "s", slow=1, delay_ms=3000)}}
    settings = flow_settings({"f": flow}, cache=redis_cache)
    async with orchestrator_app(settings) as (client, runtime):
        orchestrator = get_orchestrator(runtime)
        accepted = await client.post("/orchestrate/f?mode=async", json={})
        deadline = time.monotonic() + 5
        while not recorder.by_name("s") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # until the function is busy with our request
        assert len(orchestrator.queue.tasks) == 1  # type: ignore[attr-defined]
    assert not orchestrator.queue.tasks  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while not recorder.disconnected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert recorder.disconnected == ["s"]
    # A new instance sharing the store sees a finished execution, not a stuck "running".
    async with orchestrator_app(settings) as (client, _):
        doc = (await client.get(accepted.headers["location"])).json()
    assert doc["status"] == "failed"
    assert "shut down" in doc["error"]


def _webhook_flow(base: str) -> dict[str, Any]:
    return {
        "input": {"required": ["user_id"]},
        "steps": {"s": step(base, "s")},
        "output": {"user": "${input.user_id}"},
        "webhook": {"url": "${input.callback_url}", "secret": "secret://env/WEBHOOK_SECRET"},
    }


async def _call_webhook_flow(
    ml: ML,
    flow_settings: FlowSettings,
    callback_url: str,
    *,
    user_id: str = "u",
    allow: str | None = None,
    deliveries: list[Delivery] | None = None,
) -> tuple[Any, list[Delivery]]:
    """Run :func:`_webhook_flow` synchronously once (``allow``: the SSRF allowlist entry).

    Returns the response and the deliveries received by the time it came back.
    """
    extra = {"orchestrator": {"ssrf_allowlist": [allow]}} if allow else {}
    settings = flow_settings({"f": _webhook_flow(ml[0])}, ENV, **extra)
    async with orchestrator_app(settings) as (client, _):
        response = await client.post(
            "/orchestrate/f", json={"user_id": user_id, "callback_url": callback_url}
        )
        delivered = list(deliveries or [])
    return response, delivered


async def test_sync_webhook_is_signed_and_delivered_before_the_response(
    ml: ML, flow_settings: FlowSettings, receiver: tuple[str, list[Delivery]]
) -> None:
    hook_url, deliveries = receiver
    response, delivered_before_response = await _call_webhook_flow(
        ml,
        flow_settings,
        f"{hook_url}/hook",
        user_id="u1",
        allow="127.0.0.1",
        deliveries=deliveries,
    )
    doc = response.json()
    assert response.status_code == 200, doc
    assert len(delivered_before_response) == 1
    delivery = delivered_before_response[0]
    assert delivery.valid, "signature did not verify"
    payload = json.loads(delivery.body)
    assert payload["type"] == "orchestrator.execution.succeeded"
    assert payload["data"]["execution_id"] == doc["execution_id"]
    assert payload["data"]["output"] == {"user": "u1"}
    assert delivery.headers["webhook-id"] == f"msg_{doc['execution_id']}"
    assert doc["webhook"] == {
        "status": "delivered",
        "attempts": 1,
        "http_status": 200,
        "error": None,
    }


async def test_webhook_retries_on_503_with_same_message_id(
    ml: ML, flow_settings: FlowSettings, receiver: tuple[str, list[Delivery]]
) -> None:
    hook_url, deliveries = receiver
    response, _ = await _call_webhook_flow(
        ml, flow_settings, f"{hook_url}/hook?fail_times=2", allow="127.0.0.0/8"
    )
    assert response.json()["webhook"]["status"] == "delivered"
    assert response.json()["webhook"]["attempts"] == 3
    assert [d.valid for d in deliveries] == [True, True, True]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1


async def test_webhook_redirect_is_not_followed(
    ml: ML, flow_settings: FlowSettings, receiver: tuple[str, list[Delivery]]
) -> None:
    hook_url, deliveries = receiver
    response, _ = await _call_webhook_flow(
        ml, flow_settings, f"{hook_url}/moved", allow="127.0.0.1"
    )
    report = response.json()["webhook"]
    assert report["status"] == "failed" and report["http_status"] == 307
    assert report["attempts"] == 1
    assert deliveries == []


@pytest.mark.parametrize(
    "callback",
    [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.5/hook",
        "http://[::1]:9/hook",
        "http://[fd00::1]/hook",
        "file:///etc/passwd",
    ],
)
async def test_callback_url_to_internal_address_is_refused(
    ml: ML, flow_settings: FlowSettings, callback: str
) -> None:
    _, recorder = ml
    response, _ = await _call_webhook_flow(ml, flow_settings, callback)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "url_not_allowed"
    assert recorder.calls == []
