"""The typed execution record: the document clients see, and records stored by older code."""

from __future__ import annotations

import json
from typing import Any

from aiservice.orchestrator.kinds import ErrorKind
from aiservice.orchestrator.record import ExecutionRecord, StepState, StepsView, WebhookReport
from aiservice.orchestrator.setup import get_orchestrator

from .conftest import FlowSettings, orchestrator_app, step
from .support import Recorder

ML = tuple[str, Recorder]

# Exactly what the dict-based store wrote before records were typed (json.dumps of the
# dict, compact separators): no error kinds, private keys prefixed with "_".
OLD_FAILED = (
    '{"execution_id":"0123456789abcdef0123456789abcdef","flow":"f","status":"failed",'
    '"mode":"async","created_at":"2026-11-20T10:00:00.000Z",'
    '"updated_at":"2026-11-20T10:00:01.250Z","output":null,'
    '"error":"step \'s\' failed: timed out after 0.1s",'
    '"steps":{"s":{"status":"failed","attempts":2,"duration_ms":212.5,"http_status":null,'
    '"error":"timed out after 0.1s","output":null},'
    '"t":{"status":"cancelled","attempts":0,"duration_ms":null,"http_status":null,'
    '"error":null,"output":null}},'
    '"webhook":{"status":"delivered","attempts":1,"http_status":200,"error":null},'
    '"_input":{"user_id":"u1","n":[1,2]},"_principal":"anonymous"}'
)


def _public(raw: str) -> dict[str, Any]:
    return {k: v for k, v in json.loads(raw).items() if not k.startswith("_")}


def test_old_dict_record_loads_with_every_field() -> None:
    record = ExecutionRecord.load(OLD_FAILED)
    assert record.status == "failed" and record.mode == "async"
    assert record.input == {"user_id": "u1", "n": [1, 2]}
    assert record.principal == "anonymous"
    assert record.steps["s"].attempts == 2 and record.steps["s"].duration_ms == 212.5
    assert record.steps["t"].status == "cancelled"
    assert record.webhook == WebhookReport(status="delivered", attempts=1, http_status=200)
    assert record.error_kind is None and record.steps["s"].error_kind is None
    assert record.public() == _public(OLD_FAILED)


def test_old_failed_record_without_a_kind_answers_as_a_failed_step() -> None:
    # No kind was stored, and the message is not read to guess one: a plain 502.
    error = ExecutionRecord.load(OLD_FAILED).failure()
    assert error.status_code == 502
    assert error.code == "step_failed"
    assert error.message == "step 's' failed: timed out after 0.1s"


def test_stored_form_round_trips_and_keeps_private_fields_out_of_the_document() -> None:
    record = ExecutionRecord(
        flow="f",
        status="failed",
        input={"x": 1},
        principal="alice",
        steps={"s": StepState(), "u": StepState()},
    )
    record.steps["s"].fail(ErrorKind.URL_NOT_ALLOWED, "SSRFError: refused")
    record.fail(ErrorKind.STEP_FAILED, "step 's' failed: SSRFError: refused")
    record.cancel_unfinished()
    stored = json.loads(record.dump())
    assert stored["_input"] == {"x": 1} and stored["_principal"] == "alice"
    assert stored["error_kind"] == "step_failed"
    assert stored["steps"]["s"]["error_kind"] == "url_not_allowed"
    assert stored["steps"]["u"]["error_kind"] == "cancelled"
    assert ExecutionRecord.load(record.dump()) == record
    document = record.public()
    assert list(document) == [
        "execution_id",
        "flow",
        "status",
        "mode",
        "created_at",
        "updated_at",
        "output",
        "error",
        "steps",
        "webhook",
    ]
    assert list(document["steps"]["s"]) == [
        "status",
        "attempts",
        "duration_ms",
        "http_status",
        "error",
        "output",
    ]
    assert document["steps"]["u"] == {
        "status": "cancelled",
        "attempts": 0,
        "duration_ms": None,
        "http_status": None,
        "error": None,
        "output": None,
    }


def test_a_record_from_a_later_version_with_unknown_fields_still_loads() -> None:
    newer = json.loads(OLD_FAILED)
    newer["trace_id"] = "abc"
    newer["steps"]["s"]["retries"] = [0.1, 0.2]
    newer["error_kind"] = "step_timeout"
    record = ExecutionRecord.load(json.dumps(newer))
    assert record.error_kind is ErrorKind.STEP_TIMEOUT
    assert "trace_id" not in record.public()
    assert record.failure().status_code == 504


def test_templates_read_live_step_states_as_mappings() -> None:
    steps = {"a": StepState()}
    view = StepsView(steps)
    steps["a"].output = {"v": 1}
    steps["a"].fail(ErrorKind.UPSTREAM_STATUS, "HTTP 500")
    assert view["a"]["output"] == {"v": 1} and view["a"]["error"] == "HTTP 500"
    assert "error_kind" not in view["a"] and view["a"].get("error_kind") is None
    assert set(view["a"]) == {"status", "attempts", "duration_ms", "http_status", "error", "output"}


async def test_record_stored_by_the_previous_version_is_served_unchanged(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    flows = {"f": {"steps": {"s": step(base, "s"), "t": step(base, "t")}}}
    async with orchestrator_app(flow_settings(flows)) as (client, runtime):
        store = get_orchestrator(runtime).store
        execution_id = json.loads(OLD_FAILED)["execution_id"]
        await store.backend.set(f"orch:exec:{execution_id}", OLD_FAILED.encode(), 60)
        response = await client.get(f"/executions/{execution_id}")
    assert response.status_code == 200, response.text
    assert response.json() == _public(OLD_FAILED)


async def test_old_running_record_is_resumed_by_the_new_code(
    ml: ML, flow_settings: FlowSettings
) -> None:
    """A redelivered message for a record the old code left mid-run finishes it."""
    base, recorder = ml
    old = json.loads(OLD_FAILED)
    old.update(status="running", error=None, webhook=None)
    old["steps"]["s"] = {
        "status": "succeeded",
        "attempts": 1,
        "duration_ms": 3.2,
        "http_status": 200,
        "error": None,
        "output": {"name": "s"},
    }
    old["steps"]["t"]["status"] = "pending"
    flows = {"f": {"steps": {"s": step(base, "s"), "t": step(base, "t")}}}
    async with orchestrator_app(flow_settings(flows)) as (client, runtime):
        orchestrator = get_orchestrator(runtime)
        await orchestrator.store.backend.set(
            f"orch:exec:{old['execution_id']}", json.dumps(old).encode(), 60
        )
        await orchestrator.resume(old["execution_id"])
        doc = (await client.get(f"/executions/{old['execution_id']}")).json()
    assert doc["status"] == "succeeded", doc
    assert [c.name for c in recorder.calls] == ["t"], "the finished step ran again"
    assert doc["output"]["s"] == {"name": "s"}
