"""The OpenTelemetry SDK behind :mod:`.tracing` (imported only when ``tracing.enabled``).

One :class:`OtelTracing` per process: a ``TracerProvider`` of its own (the global one of an
embedding application is left alone), a parent-based ratio sampler, and a
``BatchSpanProcessor`` exporting OTLP/HTTP protobuf. Spans take their parent from
:mod:`.context`, not from OpenTelemetry's context: the request middleware already chose
the trace (the caller's ``traceparent`` or a new one) and the server span adopts those very
ids, so the access log line, the other log lines and the exported spans all agree.
"""

from __future__ import annotations

import random
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from .._version import __version__
from . import context
from .context import TraceContext

if TYPE_CHECKING:
    from opentelemetry.trace import Span as OtelSpan

    from ..config import Settings

__all__ = ["OtelTracing", "error_type", "genai_provider", "llm_attributes"]

_KINDS = {"internal": SpanKind.INTERNAL, "client": SpanKind.CLIENT, "server": SpanKind.SERVER}

# The GenAI conventions' well-known provider names, by aiservice provider type.
_GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "ollama": "ollama",
}

# Ids the next span must take (the server span adopts the request's); set only around one
# synchronous start_span call.
_adopt: ContextVar[tuple[int, int] | None] = ContextVar("aiservice_adopt_ids", default=None)


class _AdoptingIds(IdGenerator):
    def generate_trace_id(self) -> int:
        ids = _adopt.get()
        return ids[0] if ids is not None else random.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        ids = _adopt.get()
        return ids[1] if ids is not None else random.getrandbits(64) or 1


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


def _parent(ctx: TraceContext | None) -> Context:
    """OpenTelemetry's parent for a new span under ``ctx`` (empty: a new trace)."""
    if ctx is None:
        return Context()
    if ctx.span is not None:
        return set_span_in_context(ctx.span, Context())
    return _remote(ctx.trace_id, ctx.span_id, ctx.flags, ctx.tracestate)


def _remote(trace_id: str, span_id: str, flags: str, state: str | None) -> Context:
    remote = SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16) & 1),
        trace_state=TraceState.from_header([state]) if state else None,
    )
    return set_span_in_context(NonRecordingSpan(remote), Context())


def _as_context(span: OtelSpan, tracestate: str | None) -> TraceContext:
    sc = span.get_span_context()
    return TraceContext(
        format(sc.trace_id, "032x"),
        format(sc.span_id, "016x"),
        "01" if sc.trace_flags & 1 else "00",
        tracestate,
        span=span,
    )


class _Scope:
    """One span as the current context for a ``with`` block."""

    __slots__ = ("_attrs", "_kind", "_name", "_span", "_tokens", "_tracer")

    def __init__(self, tracer: Any, name: str, kind: SpanKind, attrs: dict[str, Any] | None):
        self._tracer, self._name, self._kind, self._attrs = tracer, name, kind, attrs
        self._span: OtelSpan | None = None
        self._tokens: Any = None

    def _start(self, parent: Context, tracestate: str | None) -> _Scope:
        span = self._tracer.start_span(
            self._name, context=parent, kind=self._kind, attributes=self._attrs
        )
        self._span = span
        self._tokens = context.enter_trace(_as_context(span, tracestate))
        return self

    def __enter__(self) -> _Scope:
        ctx = context.current_trace()
        return self._start(_parent(ctx), ctx.tracestate if ctx else None)

    def __exit__(self, typ: object, exc: object, tb: object, /) -> None:
        span = self._span
        if span is None:
            return
        if isinstance(exc, BaseException):
            kind = error_type(exc)
            span.set_attribute("error.type", kind)
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()
        context.exit_trace(self._tokens)

    def set(self, key: str, value: Any) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def llm_result(self, result: Any) -> None:
        if self._span is not None:
            self._span.set_attributes(llm_attributes(result))

    def outcome(self, attempts: int, http_status: int | None, failed: str | None) -> None:
        """The result of a call made with retries (a step, a webhook delivery)."""
        if self._span is None:
            return
        self._span.set_attribute("aiservice.attempts", attempts)
        if http_status is not None:
            self._span.set_attribute("http.response.status_code", http_status)
        if failed is not None:
            self.fail(str(failed))

    def rename(self, name: str) -> None:
        if self._span is not None:
            self._span.update_name(name)

    def fail(self, kind: str) -> None:
        """Mark the span failed without an exception (an HTTP status, a delivery report)."""
        if self._span is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(Status(StatusCode.ERROR, kind))


class OtelTracing:
    """The tracer provider, its batch exporter, and span factories for :mod:`.tracing`."""

    def __init__(
        self,
        settings: Settings,
        headers: dict[str, str] | None = None,
        *,
        exporter: SpanExporter | None = None,
    ) -> None:
        config = settings.tracing
        attributes: dict[str, Any] = {
            "service.name": config.service_name or settings.service.name,
            "service.version": __version__,
            **config.resource_attributes,
        }
        self.provider = TracerProvider(
            resource=Resource.create(attributes),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            id_generator=_AdoptingIds(),
        )
        if exporter is None:
            exporter = OTLPSpanExporter(
                endpoint=_signal_url(config.exporter.endpoint, "traces"),
                headers=headers or None,
                timeout=config.exporter.timeout_seconds,
            )
        self.processor = BatchSpanProcessor(exporter)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("aiservice", __version__)
        self.flush_millis = int(config.flush_timeout_seconds * 1000)

    def span(self, name: str, attributes: dict[str, Any] | None, kind: str) -> _Scope:
        return _Scope(self.tracer, name, _KINDS[kind], attributes)

    def llm_span(self, operation: str, provider_type: str, provider: str, model: str) -> _Scope:
        system = genai_provider(provider_type)
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": system,
            "gen_ai.system": system,
            "gen_ai.request.model": model,
            "aiservice.provider": provider,
        }
        return _Scope(self.tracer, f"{operation} {model}", SpanKind.CLIENT, attributes)

    def server_span(self, ctx: TraceContext, name: str, attributes: dict[str, Any]) -> _Scope:
        """The request's server span, taking the ids ``ctx`` (the request's context) has."""
        scope = _Scope(self.tracer, name, SpanKind.SERVER, attributes)
        if ctx.parent_id is not None:
            parent = _remote(ctx.trace_id, ctx.parent_id, ctx.flags, ctx.tracestate)
        else:
            parent = Context()
        token = _adopt.set((int(ctx.trace_id, 16), int(ctx.span_id, 16)))
        try:
            return scope._start(parent, ctx.tracestate)
        finally:
            _adopt.reset(token)

    def flush(self) -> None:
        self.provider.force_flush(self.flush_millis)

    def shutdown(self) -> None:
        self.provider.force_flush(self.flush_millis)
        self.provider.shutdown()


def _signal_url(endpoint: str | None, signal: str) -> str | None:
    """``<endpoint>/v1/<signal>``; None lets the SDK read ``OTEL_EXPORTER_OTLP_*``."""
    if not endpoint:
        return None
    return f"{endpoint.rstrip('/')}/v1/{signal}"
