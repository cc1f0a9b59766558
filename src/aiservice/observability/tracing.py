"""Spans at the call sites, for the price of one global read while tracing is off.

Call sites use :func:`span` / :func:`llm_span` as ``with`` blocks and record results on
the handle they get; with tracing off the handle is one shared object whose methods do
nothing, and nothing of OpenTelemetry is imported. :func:`start` (a start hook added by
``create_app`` when ``tracing.enabled``) builds the SDK objects in :mod:`.otel`.

The W3C context of :mod:`.context` stays the one source of truth: a span opened here
becomes the current :class:`~.context.TraceContext` (log lines carry its span id, and the
``traceparent`` sent upstream names it as the parent).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from . import context

if TYPE_CHECKING:
    from ..config import Settings
    from ..runtime import Runtime
    from .otel import OtelTracing

__all__ = [
    "Span",
    "SpanKind",
    "active",
    "flush",
    "join_xray_trace",
    "llm_span",
    "resume",
    "span",
    "start",
    "start_hooks",
    "step_span",
    "webhook_span",
    "traceparent",
]

SpanKind = Literal["internal", "client", "server"]


class Span(Protocol):
    """What a call site may do with the span of its ``with`` block."""

    def __enter__(self) -> Span: ...
    def __exit__(self, typ: object, exc: object, tb: object, /) -> None: ...
    def set(self, key: str, value: Any) -> None: ...
    def llm_result(self, result: Any) -> None: ...
    def fail(self, kind: str) -> None: ...
    def outcome(self, attempts: int, http_status: int | None, failed: str | None) -> None: ...


class _NoSpan:
    """The handle while tracing is off: shared, stateless, free."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, typ: object, exc: object, tb: object, /) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        return None

    def llm_result(self, result: Any) -> None:
        return None

    def fail(self, kind: str) -> None:
        return None

    def outcome(self, attempts: int, http_status: int | None, failed: str | None) -> None:
        return None


NO_SPAN = _NoSpan()
_active: OtelTracing | None = None


def active() -> OtelTracing | None:
    """The running tracer, or None while tracing is off (or not started yet)."""
    return _active


def span(name: str, attributes: dict[str, Any] | None = None, kind: SpanKind = "internal") -> Span:
    """A child of the current span; a ``with`` block ends it (an exception marks it failed)."""
    if _active is None:
        return NO_SPAN
    return _active.span(name, attributes, kind)


def llm_span(operation: str, provider_type: str, provider: str, model: str) -> Span:
    """One upstream LLM call attempt with the GenAI semantic conventions' attributes;
    :meth:`Span.llm_result` adds the response model and token usage."""
    if _active is None:
        return NO_SPAN
    return _active.llm_span(operation, provider_type, provider, model)


def step_span(method: str, url: str) -> Span:
    """An orchestrator step's HTTP call (all its retries); flow and step come from the
    log context the executor bound."""
    if _active is None:
        return NO_SPAN
    bound = context.current()
    step, flow = bound.get("step", "?"), bound.get("flow")
    attributes = {"aiservice.step": step, "aiservice.flow": flow, **_http(method, url)}
    return _active.span(f"step {step}", attributes, "client")


def webhook_span(url: str) -> Span:
    """A webhook delivery (all its attempts)."""
    if _active is None:
        return NO_SPAN
    return _active.span("webhook", _http("POST", url), "client")


def _http(method: str, url: str) -> dict[str, Any]:
    # Host and port only: a URL's path and query may carry tokens.
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return {
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }


def traceparent() -> str | None:
    """The current span as a ``traceparent`` (stored with an async execution)."""
    ctx = context.current_trace()
    if ctx is None:
        return None
    return f"00-{ctx.trace_id}-{ctx.span_id}-{ctx.flags}"


@contextlib.contextmanager
def resume(stored: str | None) -> Iterator[None]:
    """Continue the trace ``stored`` (a ``traceparent``) when no trace is current: a worker
    resuming an execution. Its spans and calls then belong to the request that started it."""
    parsed = context.parse_traceparent(stored) if stored else None
    if context.current_trace() is not None or parsed is None:
        yield
        return
    flags = stored.rsplit("-", 1)[-1] if stored else "01"
    with context.trace(context.TraceContext(parsed[0], parsed[1], flags)):
        yield


def join_xray_trace(scope: MutableMapping[str, Any]) -> None:
    """On Lambda, with tracing on: a request without a W3C ``traceparent`` gets the
    invocation's X-Ray trace (``_X_AMZN_TRACE_ID``) as its ``traceparent``, so the request
    context, its log lines and the server span join the trace of Lambda's segment: trace
    id the X-Ray root without its version and dashes, parent the X-Ray ``Parent``, sampled
    flag X-Ray's (the ADOT layer's ``AwsXRayLambdaPropagator`` reads it the same way).
    A caller's ``traceparent`` wins. Called by the Lambda bridge only while tracing is on."""
    headers = scope.get("headers") or []
    if _active is None or any(bytes(key).lower() == b"traceparent" for key, _ in headers):
        return
    parent = xray_traceparent()
    if parent is not None:
        scope["headers"] = [*headers, (b"traceparent", parent.encode("ascii"))]


def xray_traceparent() -> str | None:
    """``_X_AMZN_TRACE_ID`` as a W3C ``traceparent``; None when unset, malformed, without a
    ``Parent``, or when ``aiservice[xray]`` (the maintained propagator) is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.propagators.aws import AwsXRayLambdaPropagator
    except ImportError:
        _warn_no_propagator()
        return None
    found = trace.get_current_span(AwsXRayLambdaPropagator().extract({})).get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags) & 1:02x}"


@functools.cache
def _warn_no_propagator() -> None:
    # Once per process: spans still export, each invocation in a trace of its own.
    logging.getLogger("aiservice.tracing").warning(
        "opentelemetry-propagator-aws-xray is not installed: spans do not join the "
        "Lambda X-Ray trace; pip install 'aiservice[xray]'"
    )


def flush() -> None:
    """Export the finished spans now (end of a Lambda invocation); a no-op while off."""
    if _active is not None:
        _active.flush()


def check_installed(key: str = "tracing.enabled") -> None:
    """Raise :class:`~aiservice.errors.ConfigError` (with the install hint) when ``key``
    asks for OpenTelemetry but its SDK is missing."""
    from importlib.util import find_spec

    for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            from ..errors import ConfigError

            raise ConfigError(f"{name} is not installed; pip install 'aiservice[otel]'", key=key)


def start_hooks(settings: Settings) -> list[Callable[[Runtime], Awaitable[None]]]:
    """The start hooks OpenTelemetry needs under ``settings`` (none by default): this
    module's :func:`start` for ``tracing.enabled``, the OTLP metrics sink's for
    ``metrics.sink: otlp``. Raises ConfigError with the install hint if the SDK is missing."""
    hooks: list[Callable[[Runtime], Awaitable[None]]] = []
    if settings.tracing.enabled:
        check_installed()
        hooks.append(start)
    if settings.metrics.enabled and settings.metrics.sink == "otlp":
        check_installed("metrics.sink")
        from . import otlp_metrics  # imports the OpenTelemetry SDK

        hooks.append(otlp_metrics.start)
    return hooks


def install(tracer: OtelTracing | None) -> None:
    """Make ``tracer`` the process's tracer (None: off), shutting the previous one down."""
    global _active
    previous, _active = _active, tracer
    if previous is not None and previous is not tracer:
        previous.shutdown()


async def start(runtime: Runtime) -> None:
    """Start hook: resolve the exporter's header secrets, build and install the tracer;
    shutdown (flushing what is buffered) runs when the runtime closes."""
    from .otel import OtelTracing

    settings = runtime.settings
    headers = {
        key: await runtime.secrets.resolve(value)
        for key, value in settings.tracing.exporter.headers.items()
    }
    tracer = OtelTracing(settings, headers)
    install(tracer)

    def stop() -> None:
        if _active is tracer:
            install(None)
        else:
            tracer.shutdown()

    runtime.stack.callback(stop)
