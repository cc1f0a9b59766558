"""A private key namespace on the real Redis (127.0.0.1:6379), deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def redis_namespace(prefix: str) -> Iterator[str]:
    """Yield ``<prefix>-<random>``; every key under ``<name>:`` is deleted on exit."""
    import redis

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(f"{name}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
