"""The Redis deployments the Redis-backed tests run against: the shared single server on
127.0.0.1:6379, and a private Redis Cluster (:mod:`tests.cache.redis_cluster`).

A target gives the ``cache`` settings that reach it and reads or deletes a namespace's
keys there, spelled as the backend spells them (``{ns}:`` on a cluster, ``ns:`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

if TYPE_CHECKING:
    from .redis_cluster import RedisCluster as ClusterServer

SHARED_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class RedisTarget:
    name: str
    cache: dict[str, Any] = field(default_factory=dict)
    """``url``, ``cluster`` and ``password`` for the ``cache`` settings section."""

    @property
    def cluster(self) -> bool:
        return bool(self.cache.get("cluster"))

    def prefix(self, namespace: str) -> str:
        return f"{{{namespace}}}:" if self.cluster else f"{namespace}:"

    def client(self) -> aioredis.Redis | RedisCluster:
        password = self.cache.get("password")
        if self.cluster:
            return RedisCluster.from_url(self.cache["url"], password=password)
        return aioredis.Redis.from_url(self.cache["url"], password=password)

    async def values(self, namespace: str) -> dict[str, bytes]:
        """Every key of ``namespace`` with its value (on a cluster: scanned on every node)."""
        client = self.client()
        try:
            keys = [k async for k in client.scan_iter(match=self.prefix(namespace) + "*")]
            return {k.decode(): await client.get(k) for k in keys}
        finally:
            await client.aclose()

    async def cleanup(self, namespace: str) -> None:
        client = self.client()
        try:
            keys = [k async for k in client.scan_iter(match=self.prefix(namespace) + "*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


SINGLE = RedisTarget("single", {"url": SHARED_REDIS})


def cluster_target(server: ClusterServer) -> RedisTarget:
    return RedisTarget("cluster", {"url": server.url, "cluster": True, "password": server.password})
