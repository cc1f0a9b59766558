"""The span encoder writes exactly what the official OTLP encoder writes (decoded with the
``opentelemetry-proto`` classes and compared message by message)."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from aiservice.observability.otlp_encode import encode_spans

TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
RESOURCE = Resource.create({"service.name": "gw", "deployment.environment.name": "test"})
SCOPE = InstrumentationScope("aiservice", "1.2.3")


def span(name: str, span_id: int, **extra: object) -> ReadableSpan:
    ctx = SpanContext(TRACE, span_id, False, TraceFlags(1), extra.pop("state", None))  # type: ignore[arg-type]
    return ReadableSpan(
        name,
        ctx,
        resource=extra.pop("resource", RESOURCE),  # type: ignore[arg-type]
        instrumentation_scope=SCOPE,
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_123_456_789,
        **extra,  # type: ignore[arg-type]
    )


SPANS = [
    span(
        "POST /v1/chat/completions",
        0x00F067AA0BA902B7,
        kind=SpanKind.SERVER,
        parent=SpanContext(TRACE, 0x1111, True, TraceFlags(1)),
        attributes={"http.route": "/v1/chat/completions", "http.response.status_code": 200},
        state=TraceState([("vendor", "opaque")]),
    ),
    span(
        "chat gpt-test",
        0x22,
        kind=SpanKind.CLIENT,
        parent=SpanContext(TRACE, 0x00F067AA0BA902B7, False, TraceFlags(1)),
        attributes={
            "gen_ai.usage.input_tokens": 12,
            "negative": -5,
            "big": 2**62,
            "ratio": 0.25,
            "ok": True,
            "no": False,
            "gen_ai.response.finish_reasons": ["stop", "length"],
            "ints": [1, 2],
            "empty": "",
            "unicode": "héllo ✓",
        },
        status=Status(StatusCode.ERROR, "503"),
        events=[Event("retry", {"attempt": 2}, timestamp=1_700_000_000_000_000_500)],
        links=[Link(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)), {"why": "resumed"})],
    ),
    span("cache lookup", 0x33, attributes={"aiservice.cache.hit": False}),
    span("other resource", 0x44, resource=Resource.create({"service.name": "worker"})),
    span("ok status", 0x55, status=Status(StatusCode.OK)),
]


@pytest.mark.parametrize("count", [1, 2, len(SPANS)])
def test_encoding_matches_the_official_encoder(count: int) -> None:
    mine = ExportTraceServiceRequest.FromString(encode_spans(SPANS[:count]))
    theirs = official(SPANS[:count])
    assert mine == theirs


def test_empty_batch_is_an_empty_request() -> None:
    assert ExportTraceServiceRequest.FromString(encode_spans([])) == ExportTraceServiceRequest()
