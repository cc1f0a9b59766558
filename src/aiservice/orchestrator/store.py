"""Executions, idempotency keys and worker leases in the shared state backend.

Keys (the backend adds ``cache.namespace``)::

    orch:exec:<id>            the execution document (JSON), TTL orchestrator.execution_ttl
    orch:idem:<sha256>        {"execution_id", "fingerprint"} for an Idempotency-Key
    orch:lease:<id>           the worker currently running the execution (short TTL, renewed)
    orch:attempts:<id>        how many workers have started it (gives up after a bound)

The document is an :class:`~aiservice.orchestrator.record.ExecutionRecord` (its stored
form keeps the request input, the caller and the error kinds, which never leave the service).

The lease is what makes one worker run an execution at a time, whatever the queue
delivers: taken with an atomic add, renewed and released only by its owner. Renew and
release are compare-and-set / compare-and-delete on the server where the backend allows it
(a Lua script on Redis, a conditional write on DynamoDB, one locked step in memory), so a
worker whose lease lapsed and was taken over cannot extend or delete its successor's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..cache.base import StateBackend
from .kinds import ErrorKind
from .record import ExecutionRecord

__all__ = ["ExecutionStore", "fingerprint"]


def fingerprint(flow: str, payload: Any) -> str:
    canonical = json.dumps([flow, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ExecutionStore:
    def __init__(self, backend: StateBackend, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl

    async def save(self, record: ExecutionRecord) -> None:
        await self.backend.set(f"orch:exec:{record.execution_id}", record.dump(), self.ttl)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        raw = await self.backend.get(f"orch:exec:{execution_id}")
        return ExecutionRecord.load(raw) if raw is not None else None

    async def claim_key(self, scope: str, key: str, execution_id: str, print_: str) -> str | None:
        """Bind an Idempotency-Key to ``execution_id``; return the earlier id if already bound.

        Raises :class:`ConflictError` when the key was used for a different request.
        """
        digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
        name = f"orch:idem:{digest}"
        value = json.dumps({"execution_id": execution_id, "fingerprint": print_}).encode()
        if await self.backend.add(name, value, self.ttl):
            return None
        raw = await self.backend.get(name)
        if raw is None:  # expired between add and get: the key is free again
            await self.backend.set(name, value, self.ttl)
            return None
        earlier = json.loads(raw)
        if earlier.get("fingerprint") != print_:
            raise ErrorKind.IDEMPOTENCY_KEY_REUSED.error(
                "Idempotency-Key was already used with a different request",
                param="Idempotency-Key",
            )
        existing: str = earlier["execution_id"]
        return existing

    async def acquire_lease(self, execution_id: str, owner: str, ttl: float) -> bool:
        return await self.backend.add(f"orch:lease:{execution_id}", owner.encode(), ttl)

    async def renew_lease(self, execution_id: str, owner: str, ttl: float) -> bool:
        """Extend our lease; ``False`` if another worker holds it now."""
        name = f"orch:lease:{execution_id}"
        atomic = _atomic(self.backend, "renew")
        if atomic is not None:
            return await atomic(name, owner, ttl)
        # Any other backend: still ours (compare-and-set), or lapsed and free (add).
        me = owner.encode()
        return await self.backend.compare_and_set(name, me, me, ttl) or await self.backend.add(
            name, me, ttl
        )

    async def lease_holder(self, execution_id: str) -> str | None:
        raw = await self.backend.get(f"orch:lease:{execution_id}")
        return raw.decode() if raw is not None else None

    async def release_lease(self, execution_id: str, owner: str) -> None:
        """Delete the lease if (and only if) ``owner`` still holds it."""
        name = f"orch:lease:{execution_id}"
        atomic = _atomic(self.backend, "release")
        if atomic is not None:
            await atomic(name, owner, 0.0)
        elif await self.lease_holder(execution_id) == owner:
            await self.backend.delete(name)

    async def count_attempt(self, execution_id: str) -> int:
        return await self.backend.incr(f"orch:attempts:{execution_id}", 1, self.ttl)


# -- owner-conditional lease writes, per backend ------------------------------------------
# The StateBackend protocol has no conditional delete; these reach the three built-in
# backends' clients directly (behind the StrictBackend wrapper's bound). A plugin backend
# renews with compare_and_set, then add; its release reads, then deletes, which is correct
# except in a lease-expiry race.

# Ours or free (it lapsed and nobody took it): extend / take it back. Another's: refuse.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Atomic = Callable[[str, str, float], Awaitable[bool]]


def _atomic(backend: Any, op: str) -> Atomic | None:
    inner = getattr(backend, "inner", backend)
    bound = getattr(backend, "timeout", None)
    make = {"redis": _redis_op, "dynamodb": _dynamodb_op, "memory": _memory_op}.get(
        getattr(inner, "name", "")
    )
    fn = make(inner, op) if make is not None else None
    if fn is None or bound is None:
        return fn
    timed: Atomic = fn

    async def bounded(name: str, owner: str, ttl: float) -> bool:
        from ..cache.failopen import StateUnavailableError

        try:
            async with asyncio.timeout(bound):
                return await timed(name, owner, ttl)
        except Exception as exc:  # the same contract as the strict wrapper: a 503/redelivery
            raise StateUnavailableError(
                f"shared state backend {inner.name} unavailable on lease {op}",
                code="state_unavailable",
            ) from exc

    return bounded


def _redis_op(inner: Any, op: str) -> Atomic | None:
    client, key = getattr(inner, "_client", None), getattr(inner, "_key", None)
    if client is None or key is None:
        return None
    script = client.register_script(_RENEW if op == "renew" else _RELEASE)

    async def run(name: str, owner: str, ttl: float) -> bool:
        args = [owner, max(1, int(ttl * 1000))] if op == "renew" else [owner]
        return bool(await script(keys=[key(name)], args=args))

    return run


def _memory_op(inner: Any, op: str) -> Atomic | None:
    lock, live = getattr(inner, "_lock", None), getattr(inner, "_live", None)
    if lock is None or live is None:
        return None
    prefix: str = inner._prefix

    async def run(name: str, owner: str, ttl: float) -> bool:
        full = prefix + name
        with lock:
            entry = live(full)
            mine = entry is not None and entry.value == owner.encode()
            if op == "release":
                if mine:
                    inner._remove(full)
                return mine
            if entry is not None and not mine:
                return False
            inner._store(full, owner.encode(), ttl)
            return True

    return run


def _dynamodb_op(inner: Any, op: str) -> Atomic | None:
    client = getattr(inner, "_client", None)
    if client is None:
        return None
    errors = client.exceptions

    def call(name: str, owner: str, ttl: float) -> bool:
        mine = {":owner": {"B": owner.encode()}}
        try:
            if op == "release":
                client.delete_item(
                    TableName=inner.table,
                    Key=inner._pk(name),
                    ConditionExpression="v = :owner",
                    ExpressionAttributeValues=mine,
                )
            else:
                item = {**inner._pk(name), "v": {"B": owner.encode()}}
                client.put_item(
                    TableName=inner.table,
                    Item={**item, "expires_at": inner._expiry(ttl)},
                    ConditionExpression="attribute_not_exists(pk) OR v = :owner "
                    "OR expires_at <= :now",
                    ExpressionAttributeValues={**mine, ":now": inner._now()},
                )
        except errors.ConditionalCheckFailedException:
            return False
        return True

    async def run(name: str, owner: str, ttl: float) -> bool:
        return await asyncio.to_thread(call, name, owner, ttl)

    return run
