"""Per-request and per-execution log context, carried in context variables.

The request middleware sets ``request_id`` (and the trace id); the orchestrator sets
``execution_id``, ``flow`` and ``step``. The JSON formatter adds whatever is set to every
log line, so a whole run can be filtered by one id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "bind",
    "current",
    "new_request_id",
    "parse_traceparent",
    "sanitize_request_id",
]

_context: ContextVar[dict[str, Any]] = ContextVar("aiservice_log_context", default={})  # noqa: B039

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def current() -> dict[str, Any]:
    """The fields bound in this context (a read-only view; use :func:`bind` to change)."""
    return _context.get()


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every log line emitted inside the ``with`` block (and its tasks)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex


def sanitize_request_id(value: str | None) -> str | None:
    """A client-supplied id if it is safe to echo and log, else ``None``.

    Rejects control characters (header/log injection), spaces and anything over 128 chars.
    """
    if value and _REQUEST_ID_RE.match(value):
        return value
    return None


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` from a W3C ``traceparent`` header, or ``None``."""
    if not value:
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32:
        return None
    return match.group(1), match.group(2)
