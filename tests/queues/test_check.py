"""``aiservice check`` asks the configured queue whether it exists and answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from tests.support.servers import free_port

from .conftest import REDIS_URL
from .tasks_emulator import tasks_emulator

FLOWS = {"f": {"steps": {"s": {"url": "http://127.0.0.1/x"}}}}


def _check(tmp_path: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Any:
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump({"flows": FLOWS, **data}))
    code = main(["check", "--json", "--config", str(tmp_path / "aiservice.yaml")])
    out, _ = capsys.readouterr()
    return code, {row["check"]: row for row in json.loads(out)}


def _streams(url: str, namespace: str) -> dict[str, Any]:
    return {
        "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace},
        "orchestrator": {
            "queue": {"backend": "redis-streams", "redis_streams": {"url": url}},
        },
    }


def test_redis_stream_is_checked_and_its_work_left_alone(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    stream = f"{namespace}:orch:queue"
    body = json.dumps({"kind": "orchestrator.execution", "execution_id": "e", "flow": "f"})
    client.xadd(stream, {"data": body})
    try:
        _, rows = _check(tmp_path, _streams(REDIS_URL, namespace), capsys)
        # The check ran no consumer: the entry was neither delivered nor acknowledged.
        assert client.xlen(stream) == 1
        assert client.xpending(stream, "workers")["pending"] == 0
    finally:
        client.close()
    assert rows["queue"]["status"] == "ok", rows["queue"]
    assert f"redis stream {stream} group workers (1 entries)" in rows["queue"]["detail"]


def test_unreachable_redis_stream_fails_the_check(
    tmp_path: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    code, rows = _check(tmp_path, _streams(dead, namespace), capsys)
    assert code == 1
    assert rows["queue"]["status"] == "fail"
    assert "Connection" in rows["queue"]["detail"]


@pytest.mark.slow
def test_cloud_tasks_queue_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = "projects/p/locations/here/queues/executions"
    with tasks_emulator(tmp_path, existing) as emulator:
        tasks = {
            "project": "p",
            "location": "here",
            "target_url": "http://127.0.0.1:1",
            "auth": "secret",
            "secret": "s" * 20,
            "emulator_host": emulator.host,
        }

        def config(queue: str) -> dict[str, Any]:
            cloud_tasks = {**tasks, "queue": queue}
            return {
                "orchestrator": {"queue": {"backend": "cloud-tasks", "cloud_tasks": cloud_tasks}}
            }

        _, found = _check(tmp_path, config("executions"), capsys)
        code, missing = _check(tmp_path, config("nope"), capsys)
    assert found["queue"]["status"] == "ok", found["queue"]
    assert f"cloud tasks queue {existing}" in found["queue"]["detail"]
    assert code == 1 and missing["queue"]["status"] == "fail", missing["queue"]
    assert "nope" in missing["queue"]["detail"]
