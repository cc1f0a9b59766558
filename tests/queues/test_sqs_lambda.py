"""SQS on Lambda: the bridge hands execution messages to the orchestrator and counts
redeliveries (``ApproximateReceiveCount`` > 1). Crash-and-redelivery itself is covered in
``tests/orchestrator/test_queue.py`` (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiservice import create_app, get_runtime
from aiservice.platforms.aws_lambda import LambdaHandler
from aiservice.queues.base import REDELIVERIES

from ..conftest import MakeSettings
from .conftest import REDIS_URL

SAMPLE = Path(__file__).resolve().parents[1] / "platforms" / "events" / "aws" / "sqsEvent.json"


def _record(body: dict[str, Any], received: int) -> dict[str, Any]:
    template = json.loads(SAMPLE.read_text())["Records"][0]
    attributes = {**template["attributes"], "ApproximateReceiveCount": str(received)}
    return {**template, "body": json.dumps(body), "attributes": attributes}


def test_redelivered_execution_message_is_counted(
    make_settings: MakeSettings, namespace: str
) -> None:
    settings = make_settings(
        {
            "flows": {"f": {"steps": {"s": {"url": "http://127.0.0.1:9/never"}}}},
            "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace},
            "orchestrator": {
                "queue": {
                    "backend": "sqs",
                    "sqs": {"url": "https://sqs.us-east-1.amazonaws.com/1/q"},
                }
            },
        }
    )
    app = create_app(settings, configure_logs=False)
    handler = LambdaHandler(app, runtime=get_runtime(app), install_signal_handlers=False)
    counter = REDELIVERIES.labels("sqs")
    try:
        message = {"kind": "orchestrator.execution", "execution_id": "gone", "flow": "f"}
        before = counter._value.get()
        first = handler({"Records": [_record(message, 1)]}, None)
        assert counter._value.get() == before
        again = handler({"Records": [_record(message, 3)]}, None)
        assert counter._value.get() == before + 1
    finally:
        handler.close()
    # An unknown (expired) execution is acknowledged, not redelivered forever.
    assert first == again == {"batchItemFailures": []}
