"""A burst of calls larger than ``cache.max_connections`` waits for connections on a real
Redis instead of failing (a failure would make the fail-open wrapper skip the backend for
its cool-down: the cache and the limits off under a mere burst)."""

from __future__ import annotations

import asyncio
import uuid

from aiservice.cache.failopen import FailOpenBackend
from aiservice.cache.redis import RedisBackend
from aiservice.config import Settings

from .test_redis import REDIS_URL, _cleanup


async def test_a_burst_past_the_pool_size_waits_for_connections() -> None:
    prefix = f"aiservice-test-{uuid.uuid4().hex[:12]}"
    settings = Settings(cache={"url": REDIS_URL, "namespace": prefix, "max_connections": 2})
    backend = RedisBackend(settings)
    wrapped = FailOpenBackend(backend, timeout=5.0)
    try:
        keys = [f"k{i}" for i in range(40)]
        await asyncio.gather(*(wrapped.set(k, k.encode(), 30) for k in keys))
        values = await asyncio.gather(*(wrapped.get(k) for k in keys))
        assert values == [k.encode() for k in keys]  # every call served, none skipped
        assert wrapped.available
    finally:
        await backend.aclose()
        await _cleanup(prefix)
