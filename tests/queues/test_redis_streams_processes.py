"""Redis Streams with real ``aiservice serve`` processes sharing one Redis: SIGKILL mid-run.

A 3-step flow (1.5 s per step, each step after the previous) runs 10 times async. One
instance is killed with SIGKILL in the middle of the second step; its stream entries stay
pending until another consumer reclaims them (XAUTOCLAIM after ``claim_after``) and
resumes the executions from their last finished step. Checked: all 10 ``succeeded``, no
step that had answered before the kill was called again, the stream holds nothing pending.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support.servers import free_port

from .conftest import REDIS_URL
from .support import STEPS, instance, step_server, three_step_flow, wait_all_finished, write_config

pytestmark = pytest.mark.slow

DELAY = 1.5
JOBS = 10
# A step that answered this long before the kill has been stored (a write to Redis).
PERSIST_MARGIN = 0.5


def _config(namespace: str, concurrency: int) -> dict[str, Any]:
    return {
        "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace, "timeout_ms": 2000},
        "orchestrator": {
            "lease_seconds": 1.5,
            "queue": {
                "backend": "redis-streams",
                "redis_streams": {
                    "claim_after": 2.0,
                    "block_ms": 200,
                    "concurrency": concurrency,
                    "stop_grace": 1.0,
                },
            },
        },
    }


def _submit(url: str) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for job in range(JOBS):
            answer = client.post("/orchestrate/work?mode=async", json={"job": job})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["execution_id"])
    return ids


def _wait_second_step(server: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while sum(server.count(job, "two") for job in range(JOBS)) < JOBS:
        assert time.monotonic() < deadline, "the executions did not reach their second step"
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the 1.5 s step


def _assert_outcome(docs: dict[str, dict[str, Any]], server: Any, killed_at: float) -> None:
    statuses = {doc.get("status") for doc in docs.values()}
    assert statuses == {"succeeded"}, {
        k: (d.get("status"), d.get("error")) for k, d in docs.items()
    }
    for doc in docs.values():
        assert [doc["steps"][s]["status"] for s in STEPS] == ["succeeded"] * 3
    assert server.repeated_finished(killed_at, PERSIST_MARGIN) == []
    for job in range(JOBS):
        assert server.count(job, "one") == 1, f"job {job}: step one ran again"
        for step in STEPS:
            assert 1 <= server.count(job, step) <= 2


def _stream_drained(namespace: str) -> None:
    """Nothing left in the stream or pending (the ack follows the stored result closely)."""
    client = redis.Redis.from_url(REDIS_URL)
    stream = f"{namespace}:orch:queue"
    deadline = time.monotonic() + 5
    try:
        while client.xlen(stream) or client.xpending(stream, "workers")["pending"]:
            assert time.monotonic() < deadline, client.xpending(stream, "workers")
            time.sleep(0.05)
    finally:
        client.close()


def _redeliveries(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    assert 'aiservice_queue_depth{backend="redis-streams"}' in text
    assert 'aiservice_queue_oldest_age_seconds{backend="redis-streams"}' in text
    for line in text.splitlines():
        if line.startswith('aiservice_queue_redeliveries_total{backend="redis-streams"}'):
            return float(line.split()[-1])
    return 0.0


def test_two_instances_survive_sigkill_of_one(tmp_path: Path, namespace: str) -> None:
    with step_server(DELAY) as (base, server):
        dirs = [tmp_path / "a", tmp_path / "b"]
        for workdir in dirs:
            write_config(
                workdir, _config(namespace, concurrency=5), {"work": three_step_flow(base)}
            )
        with instance(dirs[0], free_port(), "a") as a, instance(dirs[1], free_port(), "b") as b:
            ids = _submit(a.url)
            _wait_second_step(server)
            a.kill()
            killed_at = time.monotonic()
            docs = wait_all_finished(b.url, ids, timeout=45)
            took = time.monotonic() - killed_at
            _assert_outcome(docs, server, killed_at)
            _stream_drained(namespace)
            assert _redeliveries(b.url) >= 1, b.output()
            assert "reclaimed queue entry" in b.output()
    assert took < 30


def test_single_instance_restarted_after_sigkill_resumes_all(
    tmp_path: Path, namespace: str
) -> None:
    with step_server(DELAY) as (base, server):
        write_config(tmp_path, _config(namespace, concurrency=10), {"work": three_step_flow(base)})
        port = free_port()
        with instance(tmp_path, port, "first") as first:
            ids = _submit(first.url)
            _wait_second_step(server)
            first.kill()
            killed_at = time.monotonic()
        with instance(tmp_path, port, "second") as second:
            docs = wait_all_finished(second.url, ids, timeout=45)
            _assert_outcome(docs, server, killed_at)
            _stream_drained(namespace)
            assert _redeliveries(second.url) == JOBS
