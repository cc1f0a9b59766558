"""Executions, idempotency keys and worker leases in the shared state backend.

Keys (the backend adds ``cache.namespace``)::

    orch:exec:<id>            the execution document (JSON), TTL orchestrator.execution_ttl
    orch:idem:<sha256>        {"execution_id", "fingerprint"} for an Idempotency-Key
    orch:lease:<id>           the worker currently running the execution (short TTL, renewed)
    orch:attempts:<id>        how many workers have started it (gives up after a bound)

The document is an :class:`~aiservice.orchestrator.record.ExecutionRecord` (its stored
form keeps the request input, the caller and the error kinds, which never leave the service).
"""

from __future__ import annotations

import hashlib
import json
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
        current = await self.backend.get(name)
        if current is not None and current.decode() != owner:
            return False
        await self.backend.set(name, owner.encode(), ttl)
        return True

    async def lease_holder(self, execution_id: str) -> str | None:
        raw = await self.backend.get(f"orch:lease:{execution_id}")
        return raw.decode() if raw is not None else None

    async def release_lease(self, execution_id: str, owner: str) -> None:
        if await self.lease_holder(execution_id) == owner:
            await self.backend.delete(f"orch:lease:{execution_id}")

    async def count_attempt(self, execution_id: str) -> int:
        return await self.backend.incr(f"orch:attempts:{execution_id}", 1, self.ttl)
