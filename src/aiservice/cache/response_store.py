"""Stored Responses API responses (``store: true``) on the shared-state backend.

One record per response: the response object and the conversation items it answered
(the history it continued, then its own input), so ``previous_response_id`` rebuilds the
whole conversation from one read. Keys are ``<responses.prefix>:<caller>:<id>``, the
caller being a digest of the API key's name: a response is visible only to the key that
created it, and another key asking for it gets the same 404 as for an unknown id.

Records are what a client continues from, not a cache: reads go through the strict
backend (an outage is a 503, never a silent "not found"); a failed write is logged and
the response still answered, with ``store: false`` so the client knows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from .failopen import StateUnavailableError

if TYPE_CHECKING:
    from ..config.responses import ResponsesSettings
    from ..security.apikeys import Principal
    from .base import StateBackend

__all__ = ["ResponseStore", "StoredResponse"]

log = logging.getLogger("aiservice.llm")

StoredResponse = dict[str, Any]
"""``{"response": {...}, "input": [items]}``."""


class ResponseStore:
    def __init__(self, backend: StateBackend, settings: ResponsesSettings) -> None:
        self.backend = backend
        self.settings = settings

    def _key(self, principal: Principal, response_id: str) -> str:
        caller = hashlib.sha256(principal.name.encode()).hexdigest()[:16]
        return f"{self.settings.prefix}:{caller}:{response_id}"

    async def save(self, principal: Principal, record: StoredResponse) -> bool:
        """Store ``record``; ``False`` (logged) when it is too large or the backend failed."""
        data = json.dumps(record, separators=(",", ":")).encode()
        response_id = record["response"]["id"]
        if len(data) > self.settings.max_stored_bytes:
            log.warning(
                "response %s not stored: %d bytes > responses.max_stored_bytes",
                response_id,
                len(data),
            )
            return False
        try:
            await self.backend.set(self._key(principal, response_id), data, self.settings.ttl)
        except StateUnavailableError:
            log.warning("response %s not stored: the state backend is unavailable", response_id)
            return False
        return True

    async def load(self, principal: Principal, response_id: str) -> StoredResponse | None:
        raw = await self.backend.get(self._key(principal, response_id))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        return record if isinstance(record, dict) and "response" in record else None

    async def delete(self, principal: Principal, response_id: str) -> bool:
        """``True`` if the response existed (for this caller) and is gone."""
        if await self.load(principal, response_id) is None:
            return False
        await self.backend.delete(self._key(principal, response_id))
        return True
