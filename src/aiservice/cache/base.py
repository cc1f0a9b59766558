"""The shared-state protocol every backend (memory, Redis, DynamoDB) implements.

Serverless instances come and go; what they share (LLM responses, coalescing leases, rate
limit counters, orchestrator executions, idempotency keys) lives behind this small
interface. Values are bytes with an optional TTL; callers choose the encoding. Keys are
given without the namespace: each backend prefixes them with ``cache.namespace``.

Backends only do their I/O. Fail-open behaviour (timeouts, outage accounting) is a wrapper
shared by all of them, so a slow or unreachable backend never fails a request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = [
    "BACKENDS",
    "BackendFactory",
    "Consume",
    "ConsumeResult",
    "StateBackend",
    "check_consume",
]


class Consume(NamedTuple):
    """One counter of an atomic :meth:`StateBackend.consume` call.

    The call is allowed when, for every counter with a ``limit``, ``current + need <= limit``;
    then every counter grows by ``amount`` (created with ``ttl`` seconds). ``need`` and
    ``amount`` differ for pre-checks: a token-per-minute counter is checked with ``need=1``
    (at least one token left) but charged later, once the usage is known (``amount=0`` now).
    """

    key: str
    amount: int
    ttl: float
    limit: int | None = None
    need: int | None = None  # defaults to ``amount``

    @property
    def required(self) -> int:
        return self.amount if self.need is None else self.need


class ConsumeResult(NamedTuple):
    allowed: bool
    values: tuple[int, ...]
    """Each counter after the call (unchanged when not allowed)."""


def check_consume(items: Sequence[Consume], current: Sequence[int]) -> bool:
    """The admission rule shared by every backend's :meth:`~StateBackend.consume`."""
    return all(
        item.limit is None or value + item.required <= item.limit
        for item, value in zip(items, current, strict=True)
    )


class StateBackend(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` if absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` in seconds (``None`` = the backend's default TTL)."""
        ...

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store only if absent (atomic across instances). ``True`` if this call stored it.

        Used for leases (request coalescing across instances) and idempotency keys.
        """
        ...

    async def compare_and_set(self, key: str, expected: bytes, value: bytes, ttl: float) -> bool:
        """Store ``value`` (with ``ttl`` seconds) only if ``key`` holds ``expected`` now
        (atomic across instances; an absent or expired key does not match). ``True`` if
        this call stored it.

        Used to re-arm a lease only while it still names its holder: a read followed by a
        write would overwrite a lease another instance took in between.
        """
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, amount: int, ttl: float) -> int:
        """Atomically add ``amount`` to an integer counter, creating it with ``ttl``."""
        ...

    async def consume(self, items: Sequence[Consume]) -> ConsumeResult:
        """Check and charge several counters atomically (one round trip where possible).

        Rate limits use it so that limits hold across replicas: either every counter is
        charged or none is (see :class:`Consume` for the admission rule).
        """
        ...

    async def ping(self) -> None:
        """Raise if the backend is unreachable (readiness check)."""
        ...

    async def aclose(self) -> None: ...


BackendFactory = Callable[["Settings", "SecretResolver"], StateBackend]
"""``factory(settings, secrets)``: backends read ``settings.cache`` and resolve secrets."""

BACKENDS: Registry[BackendFactory] = Registry("cache backend", group="aiservice.caches")
BACKENDS.register("memory", "aiservice.cache.memory:MemoryBackend")
BACKENDS.register("redis", "aiservice.cache.redis:RedisBackend", "pip install 'aiservice[redis]'")
BACKENDS.register(
    "dynamodb", "aiservice.cache.dynamodb:DynamoDBBackend", "pip install 'aiservice[aws]'"
)
