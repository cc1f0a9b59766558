"""Tracing on Lambda: the X-Ray trace id on every log line of an invocation, spans exported
before the handler returns (the environment may be frozen right after)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aiservice import Settings
from aiservice.platforms.aws_lambda import LambdaHandler, xray_trace_id
from tests.conftest import capture_json_logs
from tests.observability.otlp_receiver import OtlpReceiver, otlp_receiver

from .conftest import chat_event

MakeHandler = Callable[[Settings], LambdaHandler]

XRAY = "1-5759e988-bd862e3fe1be46a994272793"
HEADER = f"Root={XRAY};Parent=53995c3f42cd8ad8;Sampled=1"


class Context:
    aws_request_id = "req-0001"


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


def settings(**tracing: Any) -> Settings:
    return Settings(tracing=tracing, metrics={"sink": "none"})


def test_every_log_line_of_an_invocation_carries_its_xray_trace_id(
    aws_handler: MakeHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = aws_handler(settings())
    with capture_json_logs() as logs:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", HEADER)
        assert handler(chat_event(), Context())["statusCode"] == 200
        first = list(logs.records)
        second_id = "1-5759e989-00000000000000000000abcd"
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={second_id};Sampled=0")
        assert handler(chat_event(), Context())["statusCode"] == 200
        second = logs.records[len(first) :]
    assert first and second
    assert {r["xray_trace_id"] for r in first} == {XRAY}
    assert {r["xray_trace_id"] for r in second} == {second_id}  # read per invocation
    assert all(r["aws_request_id"] == "req-0001" for r in first + second)


def test_xray_header_parsing() -> None:
    import os

    saved = os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        assert xray_trace_id() is None
        os.environ["_X_AMZN_TRACE_ID"] = "Parent=1;Root=1-a-b"
        assert xray_trace_id() == "1-a-b"
    finally:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
        if saved is not None:
            os.environ["_X_AMZN_TRACE_ID"] = saved


def test_spans_are_exported_before_the_invocation_returns(
    aws_handler: MakeHandler, otlp: OtlpReceiver
) -> None:
    handler = aws_handler(settings(enabled=True, exporter={"endpoint": otlp.url}))
    result = handler(chat_event(), Context())
    assert result["statusCode"] == 200
    # No wait and no shutdown: the flush ran inside the invocation.
    names = {s.name for s in otlp.spans}
    assert {"POST /v1/chat/completions", "chat fake"} <= names, names
    [server] = [s for s in otlp.spans if s.kind == "server"]
    assert {s.trace_id for s in otlp.spans} == {server.trace_id}


def test_disabled_tracing_emits_nothing_and_imports_no_opentelemetry(otlp: OtlpReceiver) -> None:
    """A whole chat request in a fresh interpreter, tracing off (endpoint configured)."""
    code = f"""
import asyncio, sys, httpx
from aiservice import Settings, create_app
settings = Settings(tracing={{"enabled": False, "exporter": {{"endpoint": "{otlp.url}"}}}})
async def main():
    app = create_app(settings, configure_logs=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {{"model": "fake", "messages": [{{"role": "user", "content": "hi"}}]}}
            response = await client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
asyncio.run(main())
# The OpenTelemetry API may come with FastAPI (fastapi.telemetry); the SDK must not.
SDK = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto", "google.protobuf",
       "aiservice.observability.otel", "aiservice.observability.server_span")
print(",".join(sorted(n for n in sys.modules if n.startswith(SDK))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert otlp.spans == [] and otlp.headers == []
