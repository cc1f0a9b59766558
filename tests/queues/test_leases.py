"""The execution lease: renew and release only by its owner, on every built-in backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from aiservice.cache.failopen import StrictBackend
from aiservice.cache.memory import MemoryBackend
from aiservice.cache.redis import RedisBackend
from aiservice.config import Settings
from aiservice.orchestrator.store import ExecutionStore, _atomic

from .conftest import REDIS_URL


@pytest.fixture(params=["memory", "redis", "dynamodb"])
def backend(request: pytest.FixtureRequest, namespace: str) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryBackend(Settings(cache={"namespace": namespace}))
    elif request.param == "redis":
        yield RedisBackend(Settings(cache={"url": REDIS_URL, "namespace": namespace}))
    else:
        import boto3
        from moto import mock_aws

        from aiservice.cache.dynamodb import DynamoDBBackend

        with mock_aws():
            boto3.client("dynamodb", region_name="us-east-1").create_table(
                TableName="leases",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            settings = Settings(
                cache={"namespace": namespace, "table": "leases", "region": "us-east-1"}
            )
            yield DynamoDBBackend(settings)


async def test_only_the_owner_renews_or_releases(backend: Any) -> None:
    strict = StrictBackend(backend, 5.0)
    # Each built-in backend has its server-side conditional write (not read-then-write).
    assert _atomic(strict, "renew") is not None and _atomic(strict, "release") is not None
    store = ExecutionStore(strict, ttl=60)
    assert await store.acquire_lease("x", "a", 5)
    assert not await store.acquire_lease("x", "b", 5)
    assert not await store.renew_lease("x", "b", 5)
    await store.release_lease("x", "b")  # not b's: nothing happens
    assert await store.lease_holder("x") == "a"
    assert await store.renew_lease("x", "a", 5)
    await store.release_lease("x", "a")
    assert await store.lease_holder("x") is None
    assert await store.acquire_lease("x", "b", 5)
    await backend.aclose()


async def test_a_lapsed_lease_taken_over_is_not_deleted_by_the_old_owner(backend: Any) -> None:
    store = ExecutionStore(StrictBackend(backend, 5.0), ttl=60)
    assert await store.acquire_lease("y", "old", 1.0)
    await asyncio.sleep(1.2 if backend.name != "dynamodb" else 0)
    if backend.name == "dynamodb":  # second-granular expiry: take it over explicitly
        await backend.delete("orch:lease:y")
    assert await store.acquire_lease("y", "new", 5)
    await store.release_lease("y", "old")
    assert not await store.renew_lease("y", "old", 5)
    assert await store.lease_holder("y") == "new"
    await backend.aclose()
