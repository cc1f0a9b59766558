"""Per-request and per-execution log context, carried in context variables.

The request middleware sets ``request_id`` (and the trace id); the orchestrator sets
``execution_id``, ``flow`` and ``step``. The JSON formatter adds whatever is set to every
log line, so a whole run can be filtered by one id.

The W3C trace context of the request (:class:`TraceContext`, set with :func:`trace`) lives
beside it; :func:`inject_trace` puts a child ``traceparent`` on an outbound call.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TraceContext",
    "bind",
    "current",
    "current_trace",
    "enter_request",
    "enter_trace",
    "exit_trace",
    "inject_trace",
    "new_request_id",
    "parse_traceparent",
    "request_trace",
    "sanitize_request_id",
    "start_trace",
    "trace",
]

_context: ContextVar[dict[str, Any]] = ContextVar("aiservice_log_context", default={})  # noqa: B039

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
# GCP's legacy header: ``TRACE_ID/SPAN_ID;o=1`` (span id decimal, options optional).
_CLOUD_TRACE_RE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")
_ZERO_TRACE = "0" * 32


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
    """32 random hex digits (``os.urandom``: distinct after a fork or a SnapStart restore,
    unlike :mod:`random`); the shape of a trace id."""
    return os.urandom(16).hex()


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
    parsed = _parse_traceparent(value)
    return (parsed[0], parsed[1]) if parsed else None


def _parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """``(trace_id, parent_span_id, flags)``; version ``ff`` and all-zero ids are invalid."""
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if not match:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version 00 has exactly four fields; a later version may append more (W3C 3.2.4).
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == "0" * 16:
        return None
    return trace_id, span_id, flags


def _parse_cloud_trace(value: str) -> tuple[str, str, str | None] | None:
    """``(trace_id, flags, parent span id in hex)`` from ``X-Cloud-Trace-Context``."""
    match = _CLOUD_TRACE_RE.match(value.strip())
    if not match or match.group(1) == _ZERO_TRACE:
        return None
    span = int(match.group(2)) if match.group(2) else 0
    parent = f"{span:016x}" if 0 < span < 2**64 else None
    return match.group(1).lower(), "01" if match.group(3) == "1" else "00", parent


@dataclass(frozen=True, slots=True)
class TraceContext:
    """This service's current span inside the caller's trace (W3C Trace Context).

    ``parent_id`` is the caller's span (None for a trace started here). ``span`` is the
    OpenTelemetry span recording this context when tracing is on: outbound calls then name
    it as their parent; without it each call gets a fresh span id of its own.
    """

    trace_id: str
    span_id: str
    flags: str = "01"
    tracestate: str | None = None
    parent_id: str | None = None
    span: Any = field(default=None, compare=False, repr=False)

    @property
    def sampled(self) -> bool:
        return int(self.flags, 16) & 1 == 1

    def child_headers(self) -> dict[str, str]:
        """Headers for one outbound call: same trace, the caller's flags, and as parent the
        span making the call (a new span id when no span records it)."""
        span_id = self.span_id if self.span is not None else secrets.token_hex(8)
        headers = {"traceparent": f"00-{self.trace_id}-{span_id}-{self.flags}"}
        if self.tracestate:
            headers["tracestate"] = self.tracestate
        return headers


_trace: ContextVar[TraceContext | None] = ContextVar("aiservice_trace", default=None)


def start_trace(
    traceparent: str | None = None,
    tracestate: str | None = None,
    cloud_trace: str | None = None,
) -> TraceContext:
    """The server span for a request: the caller's trace (W3C first, then GCP's header)
    or a new one. Only a valid ``traceparent`` makes ``tracestate`` meaningful."""
    return _start_trace(traceparent, tracestate, cloud_trace)[0]


def _start_trace(
    traceparent: str | None, tracestate: str | None, cloud_trace: str | None
) -> tuple[TraceContext, bool]:
    """:func:`start_trace`, and whether its trace id may serve as the request id (the
    caller's W3C trace id, or a new random one)."""
    parsed = _parse_traceparent(traceparent) if traceparent else None
    if parsed:
        state = tracestate.strip() if tracestate and len(tracestate) <= 512 else None
        span_id = secrets.token_hex(8)
        return TraceContext(parsed[0], span_id, parsed[2], state or None, parsed[1]), True
    cloud = _parse_cloud_trace(cloud_trace) if cloud_trace else None
    if cloud:
        return TraceContext(cloud[0], secrets.token_hex(8), cloud[1], parent_id=cloud[2]), False
    ids = os.urandom(24).hex()  # trace and span id in one system call
    return TraceContext(ids[:32], ids[32:]), True


def request_trace(
    request_id: str | None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    cloud_trace: str | None = None,
) -> tuple[str, TraceContext]:
    """The request id and the server span of a request, from its headers.

    The id is the caller's ``X-Request-ID`` if safe, else the caller's W3C trace id, else
    new: a trace started here lends its own trace id (as random as a fresh id would be).
    """
    trace, lends_id = _start_trace(traceparent, tracestate, cloud_trace)
    chosen = sanitize_request_id(request_id)
    if chosen is None:
        chosen = trace.trace_id if lends_id else new_request_id()
    return chosen, trace


def current_trace() -> TraceContext | None:
    return _trace.get()


@contextmanager
def trace(ctx: TraceContext) -> Iterator[TraceContext]:
    """Make ``ctx`` the current trace and add its ids to every log line in the block."""
    token = _trace.set(ctx)
    try:
        with bind(trace_id=ctx.trace_id, span_id=ctx.span_id):
            yield ctx
    finally:
        _trace.reset(token)


def enter_trace(ctx: TraceContext) -> tuple[Any, Any]:
    """:func:`trace` without the generator, for spans opened on hot paths; pass the result
    to :func:`exit_trace` in the same context."""
    fields = {**_context.get(), "trace_id": ctx.trace_id, "span_id": ctx.span_id}
    return _trace.set(ctx), _context.set(fields)


def enter_request(request_id: str, ctx: TraceContext) -> tuple[Any, Any]:
    """``bind(request_id=...)`` and ``trace(ctx)`` in one step (the same fields, set once,
    no generators): the request middleware's per-request cost. Undo with
    :func:`exit_trace` in the same context."""
    fields = {
        **_context.get(),
        "request_id": request_id,
        "trace_id": ctx.trace_id,
        "span_id": ctx.span_id,
    }
    return _trace.set(ctx), _context.set(fields)


def exit_trace(tokens: tuple[Any, Any]) -> None:
    _context.reset(tokens[1])
    _trace.reset(tokens[0])


def inject_trace(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add ``traceparent``/``tracestate`` for an outbound call unless ``headers`` has one.

    Outside any request (a worker, a background job started elsewhere) each call starts a
    new trace, so the receiver still gets a valid parent.
    """
    for key in headers:
        if key.lower() == "traceparent":
            return headers  # set explicitly (e.g. by a flow step): the caller knows better
    ctx = _trace.get()
    if ctx is None:
        ctx = TraceContext(secrets.token_hex(16), secrets.token_hex(8))
    headers.update(ctx.child_headers())
    return headers
