"""Fixtures for queue tests: a private namespace on the real Redis, cleaned up after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def namespace() -> Iterator[str]:
    import redis

    name = f"test-queues-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(f"{name}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
