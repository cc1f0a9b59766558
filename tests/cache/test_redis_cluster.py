"""The Redis backend with ``cache.cluster`` against a real three-node Redis Cluster.

A cluster refuses multi-key commands across hash slots (``CROSSSLOT``) and redirects keys
another shard owns (``MOVED``); the backend's scripts touch several keys at once, so they
must all share the namespace's hash tag.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from aiservice.cache.base import Consume
from aiservice.cache.batch import Lease
from aiservice.cache.failopen import StrictBackend
from aiservice.cache.redis import RedisBackend
from aiservice.config import Settings, load_settings
from aiservice.orchestrator.store import ExecutionStore
from aiservice.queues.base import Message
from aiservice.queues.redis_streams import RedisStreamsQueue
from aiservice.secrets.base import SecretResolver

from .contract import Advance, MakeBackend, StateBackendContract
from .redis_cluster import RedisCluster, redis_cluster
from .redis_targets import RedisTarget, cluster_target


@pytest.fixture(name="cluster_target")
def cluster_target_fixture(redis_cluster_server: RedisCluster) -> RedisTarget:
    return cluster_target(redis_cluster_server)


class TestRedisClusterContract(StateBackendContract):
    ttl = 0.3  # real clock: keep expiry tests short

    @pytest.fixture
    async def make_backend(self, cluster_target: RedisTarget) -> AsyncIterator[MakeBackend]:
        run = f"aiservice-test-{uuid.uuid4().hex[:12]}"
        made: list[tuple[str, RedisBackend]] = []

        def make(namespace: str) -> RedisBackend:
            name = f"{run}-{namespace}"
            made.append(
                (name, RedisBackend(Settings(cache={**cluster_target.cache, "namespace": name})))
            )
            return made[-1][1]

        yield make
        for name, backend in made:
            await backend.aclose()
            await cluster_target.cleanup(name)

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep


async def test_every_key_of_a_namespace_lives_in_one_slot(cluster_target: RedisTarget) -> None:
    namespace = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    backend = RedisBackend(Settings(cache={**cluster_target.cache, "namespace": namespace}))
    counters = [Consume(f"rl:key:k{i}:rpm", 1, 60, limit=10) for i in range(8)]
    try:
        await backend.warm()
        found = await backend.lookup(
            "llm:abc", lease=Lease("lease:llm:abc", b"me", 5), admit=counters
        )
        assert found.leased and found.admission is not None and found.admission.allowed
        await backend.store("llm:abc", b"entry", 60, release="lease:llm:abc", charge=counters)
        await backend.set("resp:1", b"r")
        values = await cluster_target.values(namespace)
        client = cluster_target.client()
        try:
            slots = {await client.cluster_keyslot(key) for key in values}
        finally:
            await client.aclose()
    finally:
        await backend.aclose()
        await cluster_target.cleanup(namespace)
    assert sorted(values) == sorted(
        [f"{{{namespace}}}:llm:abc", f"{{{namespace}}}:resp:1"]
        + [f"{{{namespace}}}:{c.key}" for c in counters]
    )
    assert values[f"{{{namespace}}}:llm:abc"] == b"entry"
    assert len(slots) == 1


async def test_without_the_tag_the_cluster_refuses_the_scripts(
    redis_cluster_server: RedisCluster, cluster_target: RedisTarget
) -> None:
    # What the tag prevents: the same consume with plain ``ns:`` keys spans slots. If this
    # passed, the fixture would not be a cluster and the tests above would prove nothing.
    namespace = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    backend = RedisBackend(Settings(cache={**cluster_target.cache, "namespace": namespace}))
    backend._prefix = f"{namespace}:"
    counters = [Consume(f"c{i}", 1, 60) for i in range(8)]
    try:
        with pytest.raises(RedisClusterException, match="same key slot"):
            await backend.consume(counters)  # redis-py refuses before sending
    finally:
        await backend.aclose()
    node = aioredis.Redis.from_url(
        redis_cluster_server.nodes[0].url, password=redis_cluster_server.password
    )
    try:
        with pytest.raises(ResponseError, match="same slot"):  # and so would the server
            await node.eval("return 1", 2, f"{namespace}:c0", f"{namespace}:c1")
    finally:
        await node.aclose()


async def test_the_client_follows_the_slot_map_from_any_seed_node(
    redis_cluster_server: RedisCluster, cluster_target: RedisTarget
) -> None:
    namespace = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    written = RedisBackend(Settings(cache={**cluster_target.cache, "namespace": namespace}))
    readers = [
        RedisBackend(
            Settings(
                cache={
                    **cluster_target.cache,
                    "url": node.url.removesuffix("/0"),
                    "namespace": namespace,
                }
            )
        )
        for node in redis_cluster_server.nodes
    ]
    try:
        await written.set("k", b"v", ttl=60)
        assert [await reader.get("k") for reader in readers] == [b"v"] * len(readers)
        assert isinstance(written._client, ClusterClient)
    finally:
        for backend in (written, *readers):
            await backend.aclose()
        await cluster_target.cleanup(namespace)


def _cluster_settings_with_refs(url: str, password: str) -> Settings:
    return load_settings(
        environ={
            "AISERVICE_CACHE__CLUSTER": "true",
            "AISERVICE_CACHE__URL": "secret://env/REDIS_URL",
            "AISERVICE_CACHE__PASSWORD": "secret://env/REDIS_PASSWORD",
            "REDIS_URL": url,
            "REDIS_PASSWORD": password,
        },
        dotenv_file=None,
        cwd="/nonexistent",
    )


async def test_cluster_url_and_password_come_from_secret_references(
    redis_cluster_server: RedisCluster,
) -> None:
    server = redis_cluster_server
    good = _cluster_settings_with_refs(server.url, server.password)
    assert good.cache.cluster is True
    backend = RedisBackend(good, SecretResolver(good))
    try:
        await backend.set("k", b"v", ttl=60)
        assert await backend.get("k") == b"v"
        await backend.delete("k")
    finally:
        await backend.aclose()

    bad = _cluster_settings_with_refs(server.url, "wrong")
    backend = RedisBackend(bad, SecretResolver(bad))
    try:
        with pytest.raises((RedisError, RedisClusterException), match="password"):
            await backend.ping()
    finally:
        await backend.aclose()


@pytest.mark.parametrize("namespace", ["", "}x"])
def test_a_namespace_that_is_no_hash_tag_is_refused_in_cluster_mode(namespace: str) -> None:
    with pytest.raises(ValidationError, match="hash tag"):
        Settings(cache={"cluster": True, "namespace": namespace})
    assert Settings(cache={"namespace": namespace}).cache.namespace == namespace


async def test_the_redis_streams_queue_runs_on_the_cluster(cluster_target: RedisTarget) -> None:
    # The queue on cache.url shares the cluster; its dead-letter move is a MULTI over both
    # streams, so they carry the namespace tag too.
    namespace = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    streams = {"claim_after": 0.15, "block_ms": 50, "stop_grace": 0.1, "max_deliveries": 2}
    settings = Settings(
        cache={**cluster_target.cache, "namespace": namespace},
        orchestrator={"queue": {"backend": "redis-streams", "redis_streams": streams}},
    )
    queue = RedisStreamsQueue(settings)
    handled: list[str] = []

    async def handler(message: Message) -> None:
        if message.execution_id == "poison":
            raise RuntimeError("fails every time")
        handled.append(message.execution_id)

    try:
        await queue.start(handler)
        await queue.enqueue(Message.execution("poison", "f"))
        await queue.enqueue(Message.execution("good", "f"))
        client = cluster_target.client()
        try:
            for _ in range(250):
                dead: Any = await client.xrange(queue.dead_letter)
                if dead and handled:
                    break
                await asyncio.sleep(0.02)
            depth = await client.xlen(queue.stream)
        finally:
            await client.aclose()
    finally:
        await queue.stop()
        await cluster_target.cleanup(namespace)
    assert (queue.stream, queue.dead_letter) == (
        f"{{{namespace}}}:orch:queue",
        f"{{{namespace}}}:orch:queue:dead",
    )
    assert handled == ["good"]
    assert [Message.parse(entry[1][b"data"]).execution_id for entry in dead] == ["poison"]
    assert depth == 0  # both acknowledged and deleted


async def test_orchestrator_leases_run_their_scripts_on_the_cluster(
    cluster_target: RedisTarget,
) -> None:
    # The execution store reaches the backend's client and key spelling for its
    # owner-conditional lease scripts: they must land on the tagged key's shard.
    namespace = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    backend = RedisBackend(Settings(cache={**cluster_target.cache, "namespace": namespace}))
    store = ExecutionStore(StrictBackend(backend, timeout=5), ttl=60)
    try:
        await backend.warm()
        assert await store.acquire_lease("e1", "worker-a", 30) is True
        assert await store.renew_lease("e1", "worker-b", 30) is False
        assert await store.renew_lease("e1", "worker-a", 30) is True
        await store.release_lease("e1", "worker-b")
        assert await store.lease_holder("e1") == "worker-a"
        await store.release_lease("e1", "worker-a")
        assert await store.lease_holder("e1") is None
    finally:
        await backend.aclose()
        await cluster_target.cleanup(namespace)


def test_a_database_number_other_than_zero_is_refused_in_cluster_mode() -> None:
    # A cluster has only database 0; a URL naming another fails when the backend is built
    # (a startup error), not at the first request.
    with pytest.raises(RedisClusterException, match="db"):
        RedisBackend(Settings(cache={"cluster": True, "url": "redis://127.0.0.1:7000/3"}))


def test_the_cluster_fixture_fails_loudly_without_the_redis_binaries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a directory without redis-server/redis-cli
    with pytest.raises(RuntimeError, match="redis-cli not found"), redis_cluster("pw"):
        pass
