"""Cloud Tasks against the local emulator, with the service as a real ``aiservice serve``.

* a 202 enqueues one HTTP task aimed at the service's task route (checked while the queue
  is paused), and the emulator's callback runs the execution;
* a callback that dies mid-run (SIGKILL of the service during the second step) is retried
  by the queue; the retry reaches the restarted service and resumes the execution: the
  finished first step is not called again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import free_port

from .conftest import REDIS_URL
from .support import STEPS, instance, step_server, three_step_flow, wait_all_finished, write_config
from .tasks_emulator import Emulator, tasks_emulator

pytestmark = pytest.mark.slow

QUEUE = "projects/test-project/locations/here/queues/executions"
SECRET = "task-secret-for-tests-0123456789"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    with tasks_emulator(tmp_path, QUEUE) as running:
        yield running


def _client(emulator: Emulator) -> Any:
    import grpc  # type: ignore[import-untyped]
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(emulator.host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def _config(namespace: str, emulator: Emulator, port: int) -> dict[str, Any]:
    return {
        "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace, "timeout_ms": 2000},
        "orchestrator": {
            "lease_seconds": 1.5,
            "queue": {
                "backend": "cloud-tasks",
                "cloud_tasks": {
                    "project": "test-project",
                    "location": "here",
                    "queue": "executions",
                    "target_url": f"http://127.0.0.1:{port}",
                    "auth": "secret",
                    "secret": SECRET,
                    "dispatch_deadline": 60,
                    "emulator_host": emulator.host,
                },
            },
        },
    }


def test_accepted_execution_is_a_task_whose_callback_runs_it(
    tmp_path: Path, namespace: str, emulator: Emulator
) -> None:
    client = _client(emulator)
    client.pause_queue(name=QUEUE)
    port = free_port()
    with step_server(0.05) as (base, server):
        write_config(tmp_path, _config(namespace, emulator, port), {"work": three_step_flow(base)})
        with instance(tmp_path, port) as service:
            check = httpx.get(service.url + "/health/ready", timeout=5)
            assert check.status_code == 200
            accepted = httpx.post(f"{service.url}/orchestrate/work?mode=async", json={"job": 7})
            assert accepted.status_code == 202, accepted.text
            execution_id = accepted.json()["execution_id"]

            tasks = list(client.list_tasks(parent=QUEUE))
            assert len(tasks) == 1
            request = tasks[0].http_request
            assert request.url == f"{service.url}/internal/tasks/executions"
            assert json.loads(request.body) == {
                "kind": "orchestrator.execution",
                "execution_id": execution_id,
                "flow": "work",
            }
            assert request.headers["X-AIService-Task-Secret"] == SECRET
            assert server.count(7, "one") == 0  # nothing runs until the queue delivers

            client.resume_queue(name=QUEUE)
            docs = wait_all_finished(service.url, [execution_id], timeout=20)
    assert docs[execution_id]["status"] == "succeeded", docs
    assert [server.count(7, step) for step in STEPS] == [1, 1, 1]


def test_callback_killed_mid_run_is_retried_and_resumes(
    tmp_path: Path, namespace: str, emulator: Emulator
) -> None:
    port = free_port()
    with step_server(1.5) as (base, server):
        write_config(tmp_path, _config(namespace, emulator, port), {"work": three_step_flow(base)})
        with instance(tmp_path, port, "first") as first:
            accepted = httpx.post(f"{first.url}/orchestrate/work?mode=async", json={"job": 1})
            assert accepted.status_code == 202, accepted.text
            execution_id = accepted.json()["execution_id"]
            deadline = time.monotonic() + 15
            while server.count(1, "two") == 0:
                assert time.monotonic() < deadline, first.output() + emulator.output()
                time.sleep(0.05)
            time.sleep(0.3)
            first.kill()  # the callback request dies with the instance
        with instance(tmp_path, port, "second") as second:
            docs = wait_all_finished(second.url, [execution_id], timeout=30)
            metrics = httpx.get(second.url + "/metrics", timeout=5).text
    doc = docs[execution_id]
    assert doc["status"] == "succeeded", (doc, emulator.output())
    assert server.count(1, "one") == 1, "the finished first step ran again"
    assert server.count(1, "two") == 2  # the step in flight at the kill runs again
    assert server.count(1, "three") == 1
    assert 'aiservice_queue_redeliveries_total{backend="cloud-tasks"}' in metrics
