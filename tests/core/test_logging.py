"""JSON log lines: fields for Cloud Logging/CloudWatch, bound context, secret redaction."""

from __future__ import annotations

import json
import logging

from aiservice.observability import context
from aiservice.observability.logging import JsonFormatter
from aiservice.security.redact import register_secret

from ..conftest import JsonLogCapture


def test_one_json_object_per_line_with_required_fields(json_logs: JsonLogCapture) -> None:
    logging.getLogger("aiservice.test").info("hello %s", "world", extra={"step_count": 3})
    (line,) = json_logs.lines
    assert "\n" not in line
    record = json.loads(line)
    assert record["message"] == "hello world"
    assert record["severity"] == "INFO"
    assert record["logger"] == "aiservice.test"
    assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]
    assert record["step_count"] == 3


def test_bound_context_reaches_every_line_and_is_unbound_after(json_logs: JsonLogCapture) -> None:
    log = logging.getLogger("aiservice.test")
    with context.bind(request_id="r-1", execution_id="e-1", flow="match_user"):
        log.info("inside")
        with context.bind(step="embed"):
            log.warning("nested")
    log.info("outside")
    inside, nested, outside = json_logs.records
    assert inside["execution_id"] == "e-1" and inside["flow"] == "match_user"
    assert nested["step"] == "embed" and nested["request_id"] == "r-1"
    assert nested["severity"] == "WARNING"
    assert "execution_id" not in outside and "step" not in outside


def test_registered_secrets_are_redacted_everywhere(json_logs: JsonLogCapture) -> None:
    register_secret("sk-very-secret-value")
    log = logging.getLogger("aiservice.test")
    log.info("key is sk-very-secret-value", extra={"header": "Bearer sk-very-secret-value"})
    try:
        raise ValueError("upstream said sk-very-secret-value")
    except ValueError:
        log.exception("failed")
    text = "\n".join(json_logs.lines)
    assert "sk-very-secret-value" not in text
    assert text.count("[REDACTED]") >= 3


def test_trace_id_becomes_cloud_logging_trace_with_project() -> None:
    formatter = JsonFormatter(project="proj-1")
    record = logging.LogRecord("aiservice.x", logging.INFO, __file__, 1, "m", None, None)
    with context.bind(trace_id="abc123"):
        rendered = json.loads(formatter.format(record))
    assert rendered["logging.googleapis.com/trace"] == "projects/proj-1/traces/abc123"


def test_sanitize_request_id_rejects_injection() -> None:
    assert context.sanitize_request_id("ok-id_1.2") == "ok-id_1.2"
    assert context.sanitize_request_id("a\r\nSet-Cookie: x") is None
    assert context.sanitize_request_id("x" * 129) is None
    assert context.parse_traceparent("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None


def test_uvicorn_color_message_and_ansi_escapes_never_reach_json(
    json_logs: JsonLogCapture,
) -> None:
    # What uvicorn logs at startup: a plain message plus a coloured copy in ``extra``.
    logging.getLogger("aiservice.test").info(
        "Uvicorn running on %s (Press CTRL+C to quit)",
        "http://127.0.0.1:8080",
        extra={
            "color_message": "Uvicorn running on \x1b[1m%s\x1b[0m (Press CTRL+C to quit)",
            "detail": "\x1b[32mgreen\x1b[0m",
        },
    )
    (line,) = json_logs.lines
    record = json.loads(line)
    assert "color_message" not in record
    assert record["detail"] == "green"
    assert record["message"].startswith("Uvicorn running on http://127.0.0.1:8080")
    assert "\\u001b" not in line and "\x1b" not in line
