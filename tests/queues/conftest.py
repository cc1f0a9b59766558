"""Fixtures for queue tests: a private namespace on the real Redis, cleaned up after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_keys import REDIS_URL, redis_namespace

__all__ = ["REDIS_URL", "namespace"]


@pytest.fixture
def namespace() -> Iterator[str]:
    with redis_namespace("test-queues") as name:
        yield name
