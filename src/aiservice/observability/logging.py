"""One JSON object per log line, readable by Cloud Logging and CloudWatch.

Fields: ``timestamp`` (RFC 3339, UTC), ``severity`` (the level, under the name
Cloud Logging reads), ``message``, ``logger``, plus the bound context (``request_id``,
``execution_id``, ``flow``, ``step``, ``trace_id``, ``span_id``, ...), anything passed in
``extra=``, and, when a Google Cloud project is configured, the trace in Cloud Logging's own
fields (``logging.googleapis.com/trace``, ``/spanId``, ``/trace_sampled``) so the line groups
under its trace in the console. Every registered secret value is
replaced by ``[REDACTED]`` in the rendered line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from . import context
from .redact import redact

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "warn_once"]

_RESERVED = {"timestamp", "severity", "message", "logger"}
# uvicorn adds a terminal-coloured copy of its messages as ``color_message``; a log line
# for a collector carries neither that copy nor any ANSI escape.
_DROPPED = ("color_message",)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Ids for machines: a developer reading text logs filters by request_id.
_TEXT_SKIP = frozenset({"trace_id", "span_id"})


class JsonFormatter(_JsonFormatter):
    """python-json-logger formatter with our field names, context and redaction."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__(json_ensure_ascii=False)
        self._project = project

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["timestamp"] = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["severity"] = record.levelname
        log_data["logger"] = record.name
        for key, value in context.current().items():
            log_data.setdefault(key, value)
        if self._project:
            self._add_gcp_trace(log_data)
        if record.exc_info and "exc_info" not in log_data:
            log_data["exc_info"] = self.formatException(record.exc_info)
        for name in _DROPPED:
            log_data.pop(name, None)
        for key, value in log_data.items():
            if isinstance(value, str) and "\x1b" in value:
                log_data[key] = _ANSI.sub("", value)

    def _add_gcp_trace(self, log_data: dict[str, Any]) -> None:
        trace_id = log_data.get("trace_id")
        if not trace_id:
            return
        log_data["logging.googleapis.com/trace"] = f"projects/{self._project}/traces/{trace_id}"
        span_id = log_data.get("span_id")
        if span_id:
            log_data["logging.googleapis.com/spanId"] = span_id
        ctx = context.current_trace()
        if ctx is not None and ctx.trace_id == trace_id:
            log_data["logging.googleapis.com/trace_sampled"] = ctx.sampled

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(logging.Formatter):
    """Human-readable lines for local development, same context and redaction."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(f"{k}={v}" for k, v in context.current().items() if k not in _TEXT_SKIP)
        return redact(f"{line} {ctx}" if ctx else line)


_configured_handler: logging.Handler | None = None


def configure_logging(
    level: str = "INFO",
    fmt: str = "json",
    project: str | None = None,
    *,
    server_loggers: bool = False,
) -> None:
    """Install one stdout handler on the ``aiservice`` loggers (idempotent).

    ``server_loggers`` also routes uvicorn's loggers through it (the CLI and container
    entry points set it; an embedding application keeps its own logging untouched).
    """
    global _configured_handler
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(project))
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    names = ("aiservice", "uvicorn", "uvicorn.error") if server_loggers else ("aiservice",)
    for name in names:
        logger = logging.getLogger(name)
        if _configured_handler is not None and _configured_handler in logger.handlers:
            logger.removeHandler(_configured_handler)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    if server_loggers:
        # Our middleware writes the access log with request ids; uvicorn's would duplicate it.
        logging.getLogger("uvicorn.access").disabled = True
    _configured_handler = handler


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(logger: logging.Logger, key: str, message: str, *args: Any) -> None:
    """Log a warning the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
