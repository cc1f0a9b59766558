"""Sync runs through ``POST /orchestrate/{flow}`` against real ML functions on loopback."""

from __future__ import annotations

import time
from typing import Any

from aiservice.observability.metrics import render

from ..conftest import JsonLogCapture
from .conftest import FlowSettings, orchestrator_app, step
from .support import Recorder

ML = tuple[str, Recorder]


async def run(settings: Any, flow: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with orchestrator_app(settings) as (client, _):
        response = await client.post(f"/orchestrate/{flow}", json=body)
        return response.status_code, response.json()


async def test_independent_steps_run_in_parallel(ml: ML, flow_settings: FlowSettings) -> None:
    base, recorder = ml
    steps = {f"s{i}": step(base, f"s{i}", delay_ms=150) for i in range(6)}
    settings = flow_settings({"fan": {"steps": steps}})
    async with orchestrator_app(settings) as (client, _):
        start = time.monotonic()
        response = await client.post("/orchestrate/fan", json={})
        wall = time.monotonic() - start
    doc = response.json()
    assert response.status_code == 200, doc
    assert doc["status"] == "succeeded"
    # Every call started before the first one finished: they overlapped on the server.
    calls = recorder.calls
    assert len(calls) == 6
    assert max(c.start for c in calls) < min(c.end or 0 for c in calls)
    assert wall < 0.9, f"6 x 150 ms steps took {wall:.3f}s, as long as running them serially"
    assert sorted(doc["output"]) == [f"s{i}" for i in range(6)]
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in doc["steps"].values())


async def test_concurrency_limit_bounds_steps_in_flight(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    steps = {f"s{i}": step(base, f"s{i}", delay_ms=80) for i in range(4)}
    settings = flow_settings({"fan": {"max_concurrency": 2, "steps": steps}})
    status, _ = await run(settings, "fan", {})
    assert status == 200
    calls = recorder.calls
    peak = max(sum(1 for o in calls if o.start <= c.start < (o.end or 0)) for c in calls)
    assert peak == 2


async def test_dependency_output_flows_into_dependent_body(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {
        "input": {"required": ["user_id"]},
        "steps": {
            "embed": {**step(base, "embed"), "body": {"user_id": "${input.user_id}"}},
            "match": {
                **step(base, "match"),
                "depends_on": ["embed"],
                "body": {"seen": "${steps.embed.output.body}", "id": "u-${input.user_id}"},
            },
        },
        "output": {"match": "${steps.match.output.body}", "status": "${steps.embed.status}"},
    }
    status, doc = await run(flow_settings({"f": flow}), "f", {"user_id": 7})
    assert status == 200, doc
    assert recorder.by_name("match")[0].body == {"seen": {"user_id": 7}, "id": "u-7"}
    assert doc["output"] == {"match": {"seen": {"user_id": 7}, "id": "u-7"}, "status": "succeeded"}
    embed, match = recorder.by_name("embed")[0], recorder.by_name("match")[0]
    assert match.start >= (embed.end or 0)


async def test_when_false_skips_step_and_dependents_see_null(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {
        "steps": {
            "embed": {**step(base, "embed"), "when": "input.create_user_embedding"},
            "match": {
                **step(base, "match"),
                "depends_on": ["embed"],
                "body": {"embedding": "${steps.embed.output}"},
            },
        }
    }
    status, doc = await run(flow_settings({"f": flow}), "f", {"create_user_embedding": False})
    assert status == 200, doc
    assert doc["steps"]["embed"]["status"] == "skipped"
    assert recorder.by_name("embed") == []
    assert recorder.by_name("match")[0].body == {"embedding": None}


async def test_optional_step_failure_is_recorded_and_flow_succeeds(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    flow = {
        "steps": {
            "vacancy": {
                **step(base, "vacancy", status=500),
                "optional": True,
                "retry": {"max_attempts": 1},
            },
            "profession": step(base, "profession"),
        }
    }
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert status == 200, doc
    assert doc["status"] == "succeeded"
    vacancy = doc["steps"]["vacancy"]
    assert vacancy["status"] == "failed" and vacancy["http_status"] == 500
    assert "HTTP 500" in vacancy["error"]


async def test_required_failure_cancels_in_flight_steps(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {
        "steps": {
            "bad": {**step(base, "bad", status=400, delay_ms=300)},
            "slow": step(base, "slow", slow=1, delay_ms=3000),
            "after": {**step(base, "after"), "depends_on": ["bad"]},
        }
    }
    start = time.monotonic()
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert time.monotonic() - start < 2.5  # the slow function alone takes 3 s
    assert status == 502
    assert doc["error"]["code"] == "step_failed"
    assert doc["status"] == "failed" and "'bad'" in doc["error"]["message"]
    assert doc["steps"]["slow"]["status"] == "cancelled"
    assert doc["steps"]["after"]["status"] == "cancelled"
    assert recorder.by_name("after") == []
    deadline = time.monotonic() + 2
    while "slow" not in recorder.disconnected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.disconnected == ["slow"], "the server did not see the cancellation"


async def test_retries_wait_for_retry_after(ml: ML, flow_settings: FlowSettings) -> None:
    base, recorder = ml
    flow = {
        "steps": {
            "flaky": {
                **step(base, "flaky", fail_times=2, retry_after_ms=120),
                "retry": {"max_attempts": 3, "initial_delay": 0, "max_delay": 0},
            }
        }
    }
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert status == 200, doc
    assert doc["steps"]["flaky"]["attempts"] == 3
    starts = [c.start for c in recorder.by_name("flaky")]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 0.115 for gap in gaps), gaps


async def test_status_not_in_on_status_is_not_retried(ml: ML, flow_settings: FlowSettings) -> None:
    base, recorder = ml
    flow = {"steps": {"s": {**step(base, "s", status=404), "retry": {"max_attempts": 3}}}}
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert status == 502
    assert doc["steps"]["s"]["attempts"] == 1
    assert len(recorder.by_name("s")) == 1


async def test_step_timeout_fails_attempt_and_retries(ml: ML, flow_settings: FlowSettings) -> None:
    base, recorder = ml
    flow = {
        "steps": {
            "s": {
                **step(base, "s", slow=1, delay_ms=2000),
                "timeout": 0.1,
                "retry": {"max_attempts": 2, "initial_delay": 0.01, "jitter": "none"},
            }
        }
    }
    start = time.monotonic()
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert time.monotonic() - start < 1.9  # the function alone takes 2 s
    assert status == 504 and doc["error"]["code"] == "step_timeout"
    assert doc["steps"]["s"]["attempts"] == 2
    assert "timed out" in doc["steps"]["s"]["error"]
    assert len(recorder.by_name("s")) == 2


async def test_flow_deadline_returns_504(ml: ML, flow_settings: FlowSettings) -> None:
    base, _ = ml
    flow = {"timeout": 0.2, "steps": {"s": step(base, "s", slow=1, delay_ms=2000)}}
    start = time.monotonic()
    status, doc = await run(flow_settings({"f": flow}), "f", {})
    assert time.monotonic() - start < 1.9  # the function alone takes 2 s
    assert status == 504
    assert doc["error"]["code"] == "flow_timeout"
    assert doc["steps"]["s"]["status"] in ("cancelled", "failed")


async def test_invalid_input_is_400_and_unknown_flow_404(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, recorder = ml
    flow = {
        "input": {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
        "steps": {"s": step(base, "s")},
    }
    async with orchestrator_app(flow_settings({"f": flow})) as (client, _):
        missing = await client.post("/orchestrate/f", json={})
        wrong_type = await client.post("/orchestrate/f", json={"user_id": 3})
        not_object = await client.post("/orchestrate/f", json=[1])
        bad_json = await client.post(
            "/orchestrate/f", content=b"{nope", headers={"content-type": "application/json"}
        )
        unknown = await client.post("/orchestrate/nope", json={})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "user_id"
    assert wrong_type.status_code == 400 and "string" in wrong_type.json()["error"]["message"]
    assert not_object.status_code == 400
    assert bad_json.status_code == 400
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "flow_not_found"
    assert recorder.calls == []


async def test_orchestrate_requires_api_key_when_configured(
    ml: ML, flow_settings: FlowSettings
) -> None:
    base, _ = ml
    settings = flow_settings(
        {"f": {"steps": {"s": step(base, "s")}}}, auth={"api_keys": ["k1"], "min_key_length": 1}
    )
    async with orchestrator_app(settings) as (client, _):
        anonymous = await client.post("/orchestrate/f", json={})
        keyed = await client.post("/orchestrate/f", json={}, headers={"X-API-Key": "k1"})
    assert anonymous.status_code == 401
    assert keyed.status_code == 200


async def test_logs_carry_execution_flow_and_step_and_metrics_count(
    ml: ML, flow_settings: FlowSettings, json_logs: JsonLogCapture
) -> None:
    base, _ = ml
    flow = {"steps": {"one": step(base, "one")}}
    status, doc = await run(flow_settings({"logged": flow}), "logged", {})
    assert status == 200
    step_lines = [r for r in json_logs.records if r.get("step") == "one"]
    assert step_lines, json_logs.records
    assert all(r["execution_id"] == doc["execution_id"] for r in step_lines)
    assert all(r["flow"] == "logged" for r in step_lines)
    finished = [r for r in json_logs.records if r["message"] == "execution succeeded"]
    assert finished and finished[0]["execution_id"] == doc["execution_id"]
    text = render().decode()
    assert 'aiservice_orchestrator_executions_total{flow="logged",status="succeeded"}' in text
    assert (
        'aiservice_orchestrator_step_duration_seconds_count{flow="logged",status="succeeded",'
        'step="one"}' in text
    )


async def test_secret_references_are_resolved_and_redacted_from_errors_and_logs(
    ml: ML, flow_settings: FlowSettings, json_logs: JsonLogCapture
) -> None:
    base, recorder = ml
    flow = {
        "steps": {
            "s": {
                **step(base, "s", status=500),
                "headers": {"X-Token": "${secrets.env.FN_TOKEN}"},
                "body": {"echoed": "${secrets.env.FN_TOKEN}"},
                "retry": {"max_attempts": 1},
            }
        }
    }
    settings = flow_settings({"f": flow}, {"FN_TOKEN": "tok-very-secret-123"})
    status, doc = await run(settings, "f", {})
    assert status == 502
    assert recorder.by_name("s")[0].headers["x-token"] == "tok-very-secret-123"
    # The function echoes the body into its error: neither the document nor logs show it.
    assert "[REDACTED]" in doc["steps"]["s"]["error"]
    assert "tok-very-secret-123" not in str(doc)
    failures = [line for line in json_logs.lines if "step failed" in line]
    assert failures and all("[REDACTED]" in line for line in failures)
    assert all("tok-very-secret-123" not in line for line in json_logs.lines)
