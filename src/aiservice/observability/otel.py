"""The OpenTelemetry SDK behind :mod:`.tracing` (imported only when ``tracing.enabled``).

Spans take their parent from :mod:`.context`, not from OpenTelemetry's context: the request
middleware already chose the trace (the caller's ``traceparent`` or a new one) and the
server span adopts those very ids, so the access log line, the other log lines and the
exported spans agree.

A span is recorded in a small slotted object while it runs and becomes an SDK
``ReadableSpan`` when it ends, handed to a ``BatchSpanProcessor`` that exports OTLP/HTTP
protobuf (:mod:`.otlp_encode`). The SDK's full ``Span`` (a lock, bounded attributes,
events, a context object per span) costs several times more per request and gives this
service nothing it uses. Sampling is the SDK's parent-based ratio rule: a caller's sampled
flag decides; a new trace is kept when its id falls under ``sample_ratio`` (the
``TraceIdRatioBased`` bound). Spans of unsampled traces get ids (propagated downstream with
flag ``00``) and are never built.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from .._version import __version__
from . import context
from .context import TraceContext
from .otlp_encode import OtlpHttpSpanExporter

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["OtelTracing", "error_type", "genai_provider", "llm_attributes", "otlp_endpoint"]

_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}
_SAMPLED, _UNSAMPLED = TraceFlags(1), TraceFlags(0)
_UNSET = Status(StatusCode.UNSET)

# The GenAI conventions' well-known provider names, by aiservice provider type.
_GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "ollama": "ollama",
}


def genai_provider(provider_type: str) -> str:
    return _GENAI_PROVIDERS.get(provider_type, provider_type)


def error_type(exc: BaseException) -> str:
    """``error.type``: the upstream status or failure kind of a provider error, else the
    exception class (low cardinality either way)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return str(status)
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind != "http":
        return kind
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return type(exc).__qualname__


def llm_attributes(result: Any) -> dict[str, Any]:
    """Response model, id, finish reasons and token usage of a chat completion (a dict),
    a stream's first chunk (``(iterator, chunk)``) or an embedding result."""
    attrs: dict[str, Any] = {}
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
        result = result[1]  # a stream: its first chunk names the model
    if isinstance(result, dict):
        if isinstance(model := result.get("model"), str):
            attrs["gen_ai.response.model"] = model
        if isinstance(rid := result.get("id"), str):
            attrs["gen_ai.response.id"] = rid
        reasons = [
            c["finish_reason"]
            for c in result.get("choices") or ()
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        usage = result.get("usage")
        if isinstance(usage, dict):
            if isinstance(tokens := usage.get("prompt_tokens"), int):
                attrs["gen_ai.usage.input_tokens"] = tokens
            if isinstance(tokens := usage.get("completion_tokens"), int):
                attrs["gen_ai.usage.output_tokens"] = tokens
    elif isinstance(tokens := getattr(result, "input_tokens", None), int):
        attrs["gen_ai.usage.input_tokens"] = tokens
    return attrs


def otlp_endpoint(settings: Settings, signal: str) -> str:
    """Where ``signal`` (``traces``, ``metrics``) goes: ``tracing.exporter.endpoint``, else
    the standard ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (used as is) or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, else a collector on localhost; ``/v1/<signal>`` is
    appended to a base endpoint."""
    base = settings.tracing.exporter.endpoint
    if not base:
        full = settings.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        if full:
            return full
        base = settings.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
    return f"{base.rstrip('/')}/v1/{signal}"


class _Scope:
    """One span while it runs, and the current context for its ``with`` block."""

    __slots__ = (
        "_attrs",
        "_kind",
        "_name",
        "_parent",
        "_remote",
        "_sampled",
        "_span_id",
        "_start",
        "_state",
        "_status",
        "_tokens",
        "_trace_id",
        "_tracer",
    )

    def __init__(
        self, tracer: OtelTracing, name: str, kind: SpanKind, attrs: dict[str, Any] | None
    ) -> None:
        self._tracer, self._name, self._kind = tracer, name, kind
        self._attrs = dict(attrs) if attrs else {}
        self._status = _UNSET
        self._tokens: Any = None

    def _begin(
        self, ctx: TraceContext | None, parent: str | None, ids: tuple[int, int] | None = None
    ) -> _Scope:
        """Start under ``ctx`` (its trace, its flags) with ``parent`` as the parent span id
        (None: a root span); ``ids`` adopts a trace and span id."""
        tracer = self._tracer
        if ids is not None:
            trace_id, span_id = ids
        else:
            trace_id = int(ctx.trace_id, 16) if ctx is not None else _new_id(128)
            span_id = _new_id(64)
        if ctx is not None and parent is not None:
            sampled = ctx.sampled
        else:
            sampled = trace_id & 0xFFFFFFFFFFFFFFFF < tracer.bound
        self._trace_id, self._span_id = trace_id, span_id
        self._parent = int(parent, 16) if parent is not None else None
        self._remote = ids is not None  # the server span's parent is the caller's
        self._sampled = sampled
        self._state = ctx.tracestate if ctx is not None else None
        self._start = time.time_ns()
        current = TraceContext(
            f"{trace_id:032x}", f"{span_id:016x}", "01" if sampled else "00", self._state, span=self
        )
        self._tokens = context.enter_trace(current)
        return self

    def __enter__(self) -> _Scope:
        ctx = context.current_trace()
        return self._begin(ctx, ctx.span_id if ctx is not None else None)

    def __exit__(self, typ: object, exc: object, tb: object, /) -> None:
        if self._tokens is None:
            return
        context.exit_trace(self._tokens)
        self._tokens = None
        if isinstance(exc, BaseException):
            self.fail(error_type(exc))
        if self._sampled:
            self._tracer.finish(self)

    def readable(self, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
        state = TraceState.from_header([self._state]) if self._state else None
        flags = _SAMPLED
        ctx = SpanContext(self._trace_id, self._span_id, False, flags, state)
        parent = None
        if self._parent is not None:
            parent = SpanContext(self._trace_id, self._parent, self._remote, flags)
        return ReadableSpan(
            self._name,
            ctx,
            parent,
            resource,
            self._attrs,
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=time.time_ns(),
            instrumentation_scope=scope,
        )

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self._attrs[key] = value

    def llm_result(self, result: Any) -> None:
        self._attrs.update(llm_attributes(result))

    def outcome(self, attempts: int, http_status: int | None, failed: str | None) -> None:
        """The result of a call made with retries (a step, a webhook delivery)."""
        self._attrs["aiservice.attempts"] = attempts
        if http_status is not None:
            self._attrs["http.response.status_code"] = http_status
        if failed is not None:
            self.fail(str(failed))

    def rename(self, name: str) -> None:
        self._name = name

    def fail(self, kind: str) -> None:
        """Mark the span failed (an exception, an HTTP status, a delivery report)."""
        self._attrs["error.type"] = kind
        self._status = Status(StatusCode.ERROR, kind)


def _new_id(bits: int) -> int:
    return random.getrandbits(bits) or 1


class OtelTracing:
    """The resource, the sampling bound and the batch exporter, and span factories."""

    def __init__(
        self,
        settings: Settings,
        headers: dict[str, str] | None = None,
        *,
        exporter: SpanExporter | None = None,
    ) -> None:
        config = settings.tracing
        self.resource = Resource.create(
            {
                "service.name": config.service_name or settings.service.name,
                "service.version": __version__,
                **config.resource_attributes,
            }
        )
        self.scope = InstrumentationScope("aiservice", __version__)
        self.bound = TraceIdRatioBased(config.sample_ratio).bound
        if exporter is None:
            exporter = OtlpHttpSpanExporter(
                otlp_endpoint(settings, "traces"), headers, config.exporter.timeout_seconds
            )
        self.processor = BatchSpanProcessor(exporter)
        self.flush_millis = int(config.flush_timeout_seconds * 1000)

    def finish(self, scope: _Scope) -> None:
        self.processor.on_end(scope.readable(self.resource, self.scope))

    def span(self, name: str, attributes: dict[str, Any] | None, kind: str) -> _Scope:
        return _Scope(self, name, _KINDS[kind], attributes)

    def llm_span(self, operation: str, provider_type: str, provider: str, model: str) -> _Scope:
        system = genai_provider(provider_type)
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": system,
            "gen_ai.system": system,
            "gen_ai.request.model": model,
            "aiservice.provider": provider,
        }
        return _Scope(self, f"{operation} {model}", SpanKind.CLIENT, attributes)

    def server_span(self, ctx: TraceContext, name: str, attributes: dict[str, Any]) -> _Scope:
        """The request's server span, taking the ids ``ctx`` (the request's context) has;
        its parent is the caller's span, if any."""
        scope = _Scope(self, name, SpanKind.SERVER, attributes)
        return scope._begin(ctx, ctx.parent_id, (int(ctx.trace_id, 16), int(ctx.span_id, 16)))

    def flush(self) -> None:
        self.processor.force_flush(self.flush_millis)

    def shutdown(self) -> None:
        self.processor.force_flush(self.flush_millis)
        self.processor.shutdown()  # type: ignore[no-untyped-call]
