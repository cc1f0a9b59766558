"""Choosing the queue: the registry, the deprecated ``queue_url`` alias, startup errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aiservice import create_app
from aiservice.config import Settings
from aiservice.config.queues import effective_queue
from aiservice.queues.base import QUEUES
from aiservice.runtime import StartupError

from ..conftest import MakeSettings

FLOWS = {"f": {"steps": {"s": {"url": "http://127.0.0.1:9/never"}}}}


def test_builtin_backends_are_registered() -> None:
    assert {"inprocess", "sqs", "cloud-tasks", "redis-streams"} <= set(QUEUES.names())


def test_queue_url_is_a_deprecated_spelling_of_sqs() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123/jobs"
    queue = effective_queue(Settings(orchestrator={"queue_url": url}).orchestrator)
    assert queue.backend == "sqs" and queue.sqs.url == url
    assert effective_queue(Settings().orchestrator).backend == "inprocess"


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ({"backend": "kafka"}, "orchestrator.queue.backend: unknown queue backend 'kafka'"),
        ({"backend": "sqs"}, "orchestrator.queue.sqs.url is required"),
        ({"backend": "cloud-tasks"}, "orchestrator.queue.cloud_tasks.project is required"),
    ],
)
async def test_a_bad_queue_stops_startup_naming_the_key(
    make_settings: MakeSettings, queue: dict[str, str], message: str
) -> None:
    app = create_app(
        make_settings({"flows": FLOWS, "orchestrator": {"queue": queue}}), configure_logs=False
    )
    with pytest.raises(StartupError, match=message):
        async with app.router.lifespan_context(app):
            pass


def test_importing_the_registry_loads_no_client_library() -> None:
    code = (
        "import sys, aiservice.queues.base, aiservice.orchestrator.setup;"
        "print(sorted(m for m in ('boto3', 'redis', 'google.cloud.tasks_v2', 'grpc')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
