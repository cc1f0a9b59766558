"""The Lambda bridge on non-HTTP events: SQS batches, EventBridge, SNS, S3, unknown events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request

from aiservice import create_app
from aiservice.app import get_runtime
from aiservice.config import LambdaEventSettings
from aiservice.platforms.events import MESSAGE_HANDLERS
from aiservice.platforms.lambda_events import UnhandledEventError

from .conftest import load_event, probe_app

received: list[tuple[Any, dict[str, Any]]] = []


async def record_message(runtime: Any, message: dict[str, Any]) -> None:
    if message.get("fail"):
        raise RuntimeError("handler failed on purpose")
    received.append((runtime, message))


@pytest.fixture(autouse=True)
def test_handler() -> Iterator[None]:
    received.clear()
    MESSAGE_HANDLERS.add("test.record", record_message)
    yield
    received.clear()


def sqs_event(*bodies: str, fifo: bool = False) -> dict[str, Any]:
    template = load_event("sqsEvent.json")["Records"][0]
    arn = template["eventSourceARN"] + (".fifo" if fifo else "")
    records = [
        {**template, "messageId": f"m{i}", "body": body, "eventSourceARN": arn}
        for i, body in enumerate(bodies)
    ]
    return {"Records": records}


def test_sqs_messages_are_routed_by_kind_with_partial_batch_failures(make_handler: Any) -> None:
    runtime = object()
    handler = make_handler(probe_app(), runtime=runtime)
    event = sqs_event(
        json.dumps({"kind": "test.record", "n": 1}),
        "not json",
        json.dumps({"kind": "no.such.kind"}),
        json.dumps({"kind": "test.record", "fail": True}),
        json.dumps({"kind": "test.record", "n": 2}),
    )
    result = handler(event, None)
    assert result == {"batchItemFailures": [{"itemIdentifier": m} for m in ("m1", "m2", "m3")]}
    assert [(r, m["n"]) for r, m in received] == [(runtime, 1), (runtime, 2)]


def test_sample_sqs_event_reports_both_records_failed(make_handler: Any) -> None:
    """The sample bodies have no "kind": both fail, the invocation itself does not."""
    result = make_handler(probe_app())(load_event("sqsEvent.json"), None)
    ids = [r["messageId"] for r in load_event("sqsEvent.json")["Records"]]
    assert result == {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


def test_fifo_batch_stops_at_the_first_failure_to_keep_order(make_handler: Any) -> None:
    ok = json.dumps({"kind": "test.record", "n": 1})
    bad = json.dumps({"kind": "test.record", "fail": True})
    result = make_handler(probe_app())(sqs_event(ok, bad, ok, fifo=True), None)
    assert result["batchItemFailures"] == [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]
    assert len(received) == 1


def test_the_orchestrator_message_kind_is_registered() -> None:
    assert "orchestrator.execution" in MESSAGE_HANDLERS


def recorder_app(seen: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/orchestrate/{flow}")
    async def run(flow: str, request: Request) -> dict[str, Any]:
        seen.append(
            {"flow": flow, "auth": request.headers.get("authorization"), **await request.json()}
        )
        return {"execution_id": "e1"}

    return app


def test_scheduled_eventbridge_event_runs_the_configured_flow(make_handler: Any) -> None:
    seen: list[dict[str, Any]] = []
    events = {
        "ec2": LambdaEventSettings(
            match={"source": "aws.ec2", "detail.state": "terminated"},
            path="/orchestrate/cleanup",
        )
    }
    result = make_handler(recorder_app(seen), events=events)(load_event("eventBridgeEvent.json"))
    assert result == {"action": "ec2", "result": {"status": 200, "body": {"execution_id": "e1"}}}
    assert seen[0]["flow"] == "cleanup" and seen[0]["detail"]["instance_id"].startswith("i-")


def test_event_action_body_and_secret_api_key(make_settings: Any, make_handler: Any) -> None:
    """A configured body replaces the event; api_key references are resolved, not sent raw."""
    settings = make_settings(
        {
            "aws_lambda": {
                "events": {
                    "nightly": {
                        "match": {"detail-type": "Scheduled Event"},
                        "path": "/orchestrate/nightly",
                        "body": {"input": {"full": True}},
                        "api_key": "secret://env/SCHED_KEY",
                    }
                }
            }
        },
        environ={"SCHED_KEY": "k-123"},
    )
    runtime = get_runtime(create_app(settings, configure_logs=False))
    seen: list[dict[str, Any]] = []
    handler = make_handler(
        recorder_app(seen),
        events=settings.aws_lambda.events,
        resolve=runtime.secrets.resolve,
    )
    event = {**load_event("eventBridgeEvent.json"), "detail-type": "Scheduled Event"}
    handler(event, None)
    assert seen == [{"flow": "nightly", "auth": "Bearer k-123", "input": {"full": True}}]


def test_event_action_failure_fails_the_invocation(make_handler: Any) -> None:
    from aiservice.platforms.events import EventActionError

    events = {"any": LambdaEventSettings(path="/orchestrate/x", method="DELETE")}
    with pytest.raises(EventActionError, match="answered 405"):
        make_handler(recorder_app([]), events=events)(load_event("eventBridgeEvent.json"))


def test_message_action_hands_the_event_to_a_queue_handler(make_handler: Any) -> None:
    events = {"m": LambdaEventSettings(action="message", message={"kind": "test.record", "n": 9})}
    make_handler(probe_app(), events=events)(load_event("eventBridgeEvent.json"))
    ((_, message),) = received
    assert message["n"] == 9 and message["event"]["source"] == "aws.ec2"


def test_sns_and_s3_records_run_matching_actions(make_handler: Any) -> None:
    seen: list[dict[str, Any]] = []
    sns, s3 = load_event("snsEvent.json"), load_event("s3Event.json")
    events = {
        "topic": LambdaEventSettings(
            trigger="sns",
            match={"Sns.TopicArn": sns["Records"][0]["Sns"]["TopicArn"]},
            path="/orchestrate/notify",
        ),
        "upload": LambdaEventSettings(
            trigger="s3",
            match={"s3.bucket.name": s3["Records"][0]["s3"]["bucket"]["name"]},
            path="/orchestrate/ingest",
        ),
    }
    handler = make_handler(recorder_app(seen), events=events)
    assert handler(sns)["results"][0]["action"] == "topic"
    assert handler(s3)["results"][0]["action"] == "upload"
    assert [s["flow"] for s in seen] == ["notify", "ingest"]
    assert seen[1]["s3"]["object"]["key"] == s3["Records"][0]["s3"]["object"]["key"]


@pytest.mark.parametrize(
    "event",
    [
        load_event("eventBridgeEvent.json"),
        load_event("snsEvent.json"),
        load_event("s3Event.json"),
        {"something": "else"},
        ["not", "an", "object"],
    ],
    ids=["eventbridge", "sns", "s3", "unknown", "list"],
)
def test_unhandled_event_logs_once_and_explains(
    event: Any, make_handler: Any, json_logs: Any
) -> None:
    with pytest.raises(UnhandledEventError, match="aiservice cannot handle this Lambda event"):
        make_handler(probe_app())(event, None)
    errors = [r for r in json_logs.records if r["severity"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["message"].startswith("unhandled Lambda event")
    assert "Test message" not in json.dumps(errors)  # shapes are logged, never values


def test_rendered_schedule_runs_its_own_entry(make_handler: Any) -> None:
    """Two schedules with the same match: the event's detail.schedule picks the entry."""
    seen: list[dict[str, Any]] = []
    events = {
        name: LambdaEventSettings(schedule="rate(1 hour)", path=f"/orchestrate/{name}")
        for name in ("hourly", "daily")
    }
    event = {
        "source": "aiservice.schedule",
        "detail-type": "Scheduled Event",
        "detail": {"schedule": "daily"},
    }
    result = make_handler(recorder_app(seen), events=events)(event)
    assert result["action"] == "daily" and seen[0]["flow"] == "daily"
