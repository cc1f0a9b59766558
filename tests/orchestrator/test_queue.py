"""Async executions through SQS (moto) with state in the real Redis: crash and redelivery.

Each test runs with both spellings of the queue: ``orchestrator.queue: {backend: sqs}``
and the deprecated ``orchestrator.queue_url``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aiservice.orchestrator.queue import KIND, handle_message
from aiservice.orchestrator.service import ExecutionBusyError, Orchestrator
from aiservice.orchestrator.setup import get_orchestrator

from .conftest import FlowSettings, orchestrator_app, step
from .support import Recorder

ML = tuple[str, Recorder]


@pytest.fixture(params=["queue", "queue_url"])
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sqs() -> Iterator[tuple[Any, str]]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="orchestrator")["QueueUrl"]
        yield client, url


def receive(client: Any, url: str) -> dict[str, Any]:
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
    assert messages.get("Messages"), "no message in the queue"
    message: dict[str, Any] = messages["Messages"][0]
    return message


def _settings(
    form: str,
    flow_settings: FlowSettings,
    flow: dict[str, Any],
    cache: dict[str, Any],
    url: str,
    **orch: Any,
) -> Any:
    if form == "queue":
        where: dict[str, Any] = {"queue": {"backend": "sqs", "sqs": {"url": url}}}
    else:
        where = {"queue_url": url}
    return flow_settings(
        {"f": flow},
        {"AWS_REGION": "us-east-1"},
        cache=cache,
        orchestrator={**where, "lease_seconds": 0.3, **orch},
    )


async def test_async_request_enqueues_a_message_and_runs_nothing(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> None:
    base, recorder = ml
    client, url = sqs
    settings = _settings(form, flow_settings, {"steps": {"s": step(base, "s")}}, redis_cache, url)
    async with orchestrator_app(settings) as (http, _):
        accepted = await http.post(
            "/orchestrate/f", json={"x": 1}, headers={"Prefer": "respond-async"}
        )
        queued = (await http.get(accepted.headers["location"])).json()
    body = json.loads(receive(client, url)["Body"])
    assert body == {"kind": KIND, "execution_id": accepted.json()["execution_id"], "flow": "f"}
    assert queued["status"] == "queued"
    assert recorder.calls == []


async def test_worker_crash_is_resumed_by_redelivery_without_repeating_done_steps(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> None:
    base, recorder = ml
    client, url = sqs
    flow = {
        "steps": {
            "embed": step(base, "embed"),
            "match": {
                **step(base, "match", delay_ms=400),
                "depends_on": ["embed"],
                "body": {"e": "${steps.embed.output.name}"},
            },
        }
    }
    settings = _settings(form, flow_settings, flow, redis_cache, url)
    async with orchestrator_app(settings) as (http, _):
        accepted = await http.post("/orchestrate/f?mode=async", json={})
        location = accepted.headers["location"]
        message = receive(client, url)
        async with orchestrator_app(settings) as (_, worker):
            crashing = asyncio.create_task(handle_message(worker, json.loads(message["Body"])))
            deadline = time.monotonic() + 3
            while not recorder.by_name("match") and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            crashing.cancel()  # the worker dies while "match" is in flight
            await asyncio.gather(crashing, return_exceptions=True)
        stuck = (await http.get(location)).json()
        assert stuck["status"] == "running"
        assert stuck["steps"]["embed"]["status"] == "succeeded"

        # SQS makes the undeleted message visible again; a fresh worker picks it up.
        client.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        again = receive(client, url)
        assert again["MessageId"] == message["MessageId"]
        async with orchestrator_app(settings) as (_, worker):
            await handle_message(worker, json.loads(again["Body"]))
        client.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
        final = (await http.get(location)).json()
    assert final["status"] == "succeeded", final
    assert len(recorder.by_name("embed")) == 1, "a finished step ran again"
    assert len(recorder.by_name("match")) == 2
    assert recorder.by_name("match")[-1].body == {"e": "embed"}


async def test_live_lease_makes_the_message_fail_until_it_lapses(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> None:
    base, recorder = ml
    client, url = sqs
    settings = _settings(form, flow_settings, {"steps": {"s": step(base, "s")}}, redis_cache, url)
    async with orchestrator_app(settings) as (http, runtime):
        accepted = await http.post("/orchestrate/f?mode=async", json={})
        execution_id = accepted.json()["execution_id"]
        store = get_orchestrator(runtime).store
        assert await store.acquire_lease(execution_id, "a-worker-that-died", 0.3)
        body = json.loads(receive(client, url)["Body"])
        with pytest.raises(ExecutionBusyError):
            await handle_message(runtime, body)
        assert recorder.calls == []
        await asyncio.sleep(0.35)
        await handle_message(runtime, body)
        final = (await http.get(accepted.headers["location"])).json()
    assert final["status"] == "succeeded"
    assert len(recorder.by_name("s")) == 1


async def test_execution_is_marked_failed_after_too_many_worker_attempts(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> None:
    base, recorder = ml
    client, url = sqs
    flow = {"steps": {"s": step(base, "s")}}
    settings = _settings(form, flow_settings, flow, redis_cache, url, max_worker_attempts=2)
    async with orchestrator_app(settings) as (http, runtime):
        accepted = await http.post("/orchestrate/f?mode=async", json={})
        execution_id = accepted.json()["execution_id"]
        store = get_orchestrator(runtime).store
        for _ in range(2):  # two earlier workers started it and died
            await store.count_attempt(execution_id)
        body = json.loads(receive(client, url)["Body"])
        await handle_message(runtime, body)
        final = (await http.get(accepted.headers["location"])).json()
        await handle_message(runtime, body)  # a late duplicate is a no-op
    assert final["status"] == "failed"
    assert "gave up after 2 worker attempts" in final["error"]
    assert recorder.calls == []


async def test_message_for_unknown_execution_is_acknowledged(
    flow_settings: FlowSettings, redis_cache: dict[str, Any], ml: ML
) -> None:
    base, _ = ml
    settings = flow_settings({"f": {"steps": {"s": step(base, "s")}}}, cache=redis_cache)
    async with orchestrator_app(settings) as (_, runtime):
        await handle_message(runtime, {"kind": KIND, "execution_id": "expired"})
        with pytest.raises(ValueError):
            await handle_message(runtime, {"kind": KIND})


async def _lose_the_lease_mid_step(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> tuple[str, dict[str, Any]]:
    """A worker runs a slow step; meanwhile another worker takes the lease over (this one
    stalled past lease_seconds): the run must stop with "lost the lease" within 2 s and
    leave the lease to the new holder. The execution id and its document after that."""
    base, recorder = ml
    client, url = sqs
    flow = {"steps": {"s": step(base, "s", slow=1, delay_ms=3000)}}
    settings = _settings(form, flow_settings, flow, redis_cache, url)
    async with orchestrator_app(settings) as (http, runtime):
        accepted = await http.post("/orchestrate/f?mode=async", json={})
        execution_id = accepted.json()["execution_id"]
        body = json.loads(receive(client, url)["Body"])
        running = asyncio.create_task(handle_message(runtime, body))
        deadline = time.monotonic() + 3
        while not recorder.by_name("s") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        store = get_orchestrator(runtime).store
        await store.backend.set(f"orch:lease:{execution_id}", b"the-new-holder", 5)
        with pytest.raises(ExecutionBusyError, match="lost the lease"):
            await asyncio.wait_for(running, 2)
        doc = (await http.get(accepted.headers["location"])).json()
        assert await store.lease_holder(execution_id) == "the-new-holder"
    return execution_id, doc


async def test_worker_that_loses_its_lease_stops_and_writes_nothing_more(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    form: str,
) -> None:
    _, doc = await _lose_the_lease_mid_step(ml, flow_settings, redis_cache, sqs, form)
    recorder = ml[1]
    deadline = time.monotonic() + 2
    while not recorder.disconnected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert recorder.disconnected == ["s"]  # the step call was abandoned
    assert doc["status"] == "running"  # left to the new holder, not overwritten


async def test_a_run_that_swallows_the_lost_lease_cancel_is_cancelled_again(
    ml: ML,
    flow_settings: FlowSettings,
    redis_cache: dict[str, Any],
    sqs: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py can swallow a cancel that lands while a reply is read: the run then
    carries on as if nothing happened. The heartbeat cancels it again until it leaves."""
    real_run = Orchestrator._run
    swallowed: list[str] = []

    async def run_swallowing_one_cancel(self: Orchestrator, flow: Any, record: Any) -> None:
        try:
            await real_run(self, flow, record)
        except asyncio.CancelledError:
            swallowed.append(record.execution_id)
            await asyncio.sleep(30)  # carries on; only another cancel ends this

    monkeypatch.setattr(Orchestrator, "_run", run_swallowing_one_cancel)
    args = (ml, flow_settings, redis_cache, sqs, "queue")
    execution_id, doc = await _lose_the_lease_mid_step(*args)
    assert swallowed == [execution_id]
    assert doc["status"] == "running"  # left to the new holder
