"""OTLP/HTTP protobuf for finished spans: a direct wire encoder and the exporter posting it.

Why not the SDK's ``OTLPSpanExporter``: it builds one generated protobuf object per span,
attribute and value (~20 µs per span), which alone cost the gateway several percent of its
throughput. Spans have a small, fixed shape, so this module writes the protobuf wire format
of ``ExportTraceServiceRequest`` directly (keys encoded once and cached); the tests decode
every export with the official ``opentelemetry-proto`` classes. Any ``ReadableSpan`` is
accepted (attributes of every OTLP value type, events, links).

Field numbers: opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["OtlpHttpSpanExporter", "encode_spans"]

log = logging.getLogger("aiservice.tracing")

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_SPAN_FLAGS = b"\x85\x01"  # Span.flags: field 16, fixed32
_LINK_FLAGS = b"\x35"  # Span.Link.flags: field 6, fixed32


def _flags(tag: bytes, parent: Any) -> bytes:
    """``SpanFlags``: whether the parent is remote is known (0x100), and whether it is."""
    return tag + _pack_fixed32(0x300 if parent is not None and parent.is_remote else 0x100)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len(field: int, data: bytes) -> bytes:
    """A length-delimited field (string, bytes, message)."""
    size = len(data)
    if size < 0x80 and field < 16:  # one byte each for the tag and the length
        return bytes((field << 3 | 2, size)) + data
    return _varint(field << 3 | 2) + _varint(size) + data


def _any(value: Any) -> bytes:
    """An ``AnyValue`` message."""
    if isinstance(value, str):
        return _len(1, value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _len(7, value)
    if isinstance(value, Sequence):
        return _len(5, b"".join(_len(1, _any(v)) for v in value))
    if isinstance(value, Mapping):
        return _len(6, b"".join(_len(1, _kv(str(k), v)) for k, v in value.items()))
    return _len(1, str(value).encode())


_keys: dict[str, bytes] = {}


def _kv(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message's content."""
    encoded = _keys.get(key)
    if encoded is None:
        encoded = _len(1, key.encode())
        if len(_keys) < 4096:
            _keys[key] = encoded
    return encoded + _len(2, _any(value))


# Encoded attribute fields by (field, key, type, value): most attributes repeat from span
# to span (operation, provider, model, route, status), so most cost one dict lookup.
# Cleared when full, so unique values (response ids) cannot crowd the repeated ones out.
_fields: dict[tuple[int, str, type, Any], bytes] = {}
_SCALARS = (str, int, bool, float)
MAX_CACHED_FIELDS = 8192


def _attributes(field: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    out = []
    for k, v in attributes.items():
        kind = type(v)
        if kind not in _SCALARS:
            out.append(_len(field, _kv(k, v)))
            continue
        cache_key = (field, k, kind, v)
        encoded = _fields.get(cache_key)
        if encoded is None:
            encoded = _len(field, _kv(k, v))
            if len(_fields) >= MAX_CACHED_FIELDS:
                _fields.clear()
            _fields[cache_key] = encoded
        out.append(encoded)
    return b"".join(out)


_names: dict[tuple[str, int], bytes] = {}


def _name(name: str, kind: int) -> bytes:
    """The name and kind fields (SDK kinds are the proto's minus one), cached: span names
    are route templates and model names."""
    encoded = _names.get((name, kind))
    if encoded is None:
        encoded = _len(5, name.encode()) + b"\x30" + _varint(kind + 1)
        if len(_names) >= MAX_CACHED_FIELDS:
            _names.clear()
        _names[(name, kind)] = encoded
    return encoded


def _span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parts = [
        b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
    ]
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    if state:
        parts.append(_len(3, state.encode()))
    if span.parent is not None:
        parts.append(b"\x22\x08" + span.parent.span_id.to_bytes(8, "big"))
    parts.append(_name(span.name, span.kind.value))
    parts.append(b"\x39" + _pack_fixed64(span.start_time or 0))
    parts.append(b"\x41" + _pack_fixed64(span.end_time or 0))
    parts.append(_attributes(9, span.attributes))
    for event in span.events:
        body = b"\x09" + _pack_fixed64(event.timestamp) + _len(2, event.name.encode())
        parts.append(_len(11, body + _attributes(3, event.attributes)))
    for link in span.links:
        lc = link.context
        body = b"\x0a\x10" + lc.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + lc.span_id.to_bytes(8, "big")
        parts.append(_len(13, body + _attributes(4, link.attributes) + _flags(_LINK_FLAGS, lc)))
    status = span.status
    body = _len(2, status.description.encode()) if status.description else b""
    if status.status_code.value:
        body += b"\x18" + _varint(status.status_code.value)
    parts.append(_len(15, body))
    parts.append(_flags(_SPAN_FLAGS, span.parent))
    return b"".join(parts)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest``: spans grouped by resource and scope."""
    # By identity: hashing a Resource serialises its attributes to JSON, every time.
    grouped: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        key = (id(resource), id(scope))
        group = grouped.get(key)
        if group is None:
            group = grouped[key] = (resource, scope, [])
        group[2].append(_span(span))
    out = []
    for resource, scope, encoded in grouped.values():
        resource_msg = _attributes(1, resource.attributes) if resource is not None else b""
        scope_msg = b""
        if scope is not None:
            scope_msg = _len(1, scope.name.encode())
            if scope.version:
                scope_msg += _len(2, scope.version.encode())
        body = _len(1, scope_msg) + b"".join(_len(2, s) for s in encoded)
        out.append(_len(1, _len(1, resource_msg) + _len(2, body)))
    return b"".join(out)


class OtlpHttpSpanExporter(SpanExporter):
    """POSTs encoded batches (``application/x-protobuf``) to ``endpoint``; retries
    connection failures, 429 and 502-504 with backoff within ``timeout``."""

    RETRY_STATUS = frozenset({429, 502, 503, 504})

    def __init__(self, endpoint: str, headers: Mapping[str, str] | None, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Content-Type": "application/x-protobuf", **(headers or {})})
        self._shutdown = threading.Event()
        self._warned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown.is_set():
            return SpanExportResult.FAILURE
        data = encode_spans(spans)
        deadline = time.monotonic() + self.timeout
        delay = 0.5
        while True:
            problem = self._post(data, deadline)
            if problem is None:
                return SpanExportResult.SUCCESS
            if problem.startswith("final") or time.monotonic() + delay >= deadline:
                self._warn(problem, len(spans))
                return SpanExportResult.FAILURE
            if self._shutdown.wait(delay):
                return SpanExportResult.FAILURE
            delay *= 2

    def _post(self, data: bytes, deadline: float) -> str | None:
        try:
            left = max(deadline - time.monotonic(), 0.1)
            response = self._session.post(self.endpoint, data=data, timeout=left)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.ok:
            return None
        kind = "" if response.status_code in self.RETRY_STATUS else "final "
        return f"{kind}HTTP {response.status_code}"

    def _warn(self, problem: str, count: int) -> None:
        # Once per process: a collector that is down must not flood the log.
        if not self._warned:
            self._warned = True
            log.warning(
                "span export to %s failed (%s); %d spans dropped (logged once)",
                self.endpoint,
                problem,
                count,
            )

    def shutdown(self) -> None:
        self._shutdown.set()
        self._session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
