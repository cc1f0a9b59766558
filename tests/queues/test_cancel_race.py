"""A cancellation swallowed by the Redis client must not leave a queue entry unacknowledged.

redis-py's asyncio client sometimes swallows a ``cancel()`` that lands while a reply is
read (redis/redis-py#2028, #2551). An execution's lease heartbeat renews through it: when
the run ended and cancelled its heartbeat at that moment, the heartbeat carried on and the
run waited for it forever — the execution was stored ``succeeded`` but its stream entry
stayed pending on the live consumer (seen on a loaded machine as a flaky SIGKILL test).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from aiservice.orchestrator.store import ExecutionStore
from aiservice.queues.base import cancel_and_wait

from ..conftest import MakeSettings, app_client
from .conftest import REDIS_URL
from .support import step_server


async def test_cancel_and_wait_ends_tasks_cancelled_inside_real_redis_calls() -> None:
    """Cancels land at random points of a loop of real round trips (as a heartbeat's):
    every task ends, however many cancels the client swallowed on the way."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(0)
            await client.get("test-queues-cancel-race")

    try:
        for _ in range(150):
            task = asyncio.create_task(heartbeat())
            await asyncio.sleep(random.random() * 0.003)
            await asyncio.wait_for(cancel_and_wait(task), 2)
            assert task.cancelled()
    finally:
        await client.aclose()


def _drained(namespace: str, timeout: float) -> dict[str, Any]:
    client = redis.Redis.from_url(REDIS_URL)
    stream = f"{namespace}:orch:queue"
    deadline = time.monotonic() + timeout
    try:
        while client.xlen(stream) or client.xpending(stream, "workers")["pending"]:
            if time.monotonic() > deadline:
                return dict(client.xpending(stream, "workers"))
            time.sleep(0.02)
        return {}
    finally:
        client.close()


async def test_entry_is_acked_when_the_heartbeat_swallows_its_cancel(
    make_settings: MakeSettings, namespace: str, monkeypatch: Any
) -> None:
    real = ExecutionStore.renew_lease
    swallowed: list[str] = []

    async def renew_like_redis_py(self: Any, execution_id: str, owner: str, ttl: float) -> bool:
        # The reply is slow to arrive; a cancel landing meanwhile is swallowed and the
        # call returns as if it had not been cancelled — what redis-py does in the race.
        try:
            renewed = await real(self, execution_id, owner, ttl)
            await asyncio.sleep(5)
            return renewed
        except asyncio.CancelledError:
            swallowed.append(execution_id)
            return True

    monkeypatch.setattr(ExecutionStore, "renew_lease", renew_like_redis_py)
    with step_server(0.4) as (base, _):
        settings = make_settings(
            {
                "cache": {"backend": "redis", "url": REDIS_URL, "namespace": namespace},
                "flows": {
                    "work": {"steps": {"one": {"url": f"{base}/fn/one", "body": {"job": 1}}}}
                },
                "orchestrator": {
                    "lease_seconds": 0.3,
                    "queue": {
                        "backend": "redis-streams",
                        "redis_streams": {"claim_after": 3.0, "block_ms": 50},
                    },
                },
            }
        )
        async with app_client(settings) as http:
            accepted = await http.post("/orchestrate/work?mode=async", json={})
            assert accepted.status_code == 202, accepted.text
            location = accepted.headers["location"]
            deadline = time.monotonic() + 10
            while (await http.get(location)).json()["status"] != "succeeded":
                assert time.monotonic() < deadline, "the execution did not finish"
                await asyncio.sleep(0.05)
            # Well below claim_after: acknowledged by the run itself, not reclaimed.
            left = await asyncio.to_thread(_drained, namespace, 1.5)
            assert left == {}, left
    assert swallowed, "the cancel did not land inside the renewal"
