"""HTTP events on Lambda: Mangum's event translators plus the fixes Mangum lacks.

Mangum turns API Gateway (REST v1, HTTP API v2), ALB, Function URL and Lambda@Edge
(CloudFront) events into ASGI scopes and responses back into events. On top of it:

* VPC Lattice v2 events (Mangum sends them to its HTTP API handler, which fails);
* every ``Cookie`` header value is joined into one header with ``"; "`` (RFC 6265): Mangum
  joins REST v1 multi-value headers with ``", "`` (the app saw one cookie), passes ALB's as
  several headers (frameworks read the first) and keeps the first of Lambda@Edge's;
* the API Gateway stage (or custom-domain base path) becomes ``root_path``, so URLs the
  app builds (``/docs`` -> ``openapi.json``) include it;
* a failure before the response is complete is a 500 with the JSON error envelope, even
  after ``http.response.start`` (:func:`run_http`);
* the app runs on the caller's event loop (see :mod:`.aws_lambda`), not a fresh one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message

from ..errors import error_body

__all__ = [
    "HttpEvent",
    "ProtocolError",
    "VpcLatticeV2",
    "build_scope",
    "decode_body",
    "drop_headers",
    "infer_http",
    "run_http",
]

log = logging.getLogger("aiservice.platforms")

HttpEvent = Any  # a Mangum handler instance: ``.scope``, ``.body``, ``__call__(response)``


class VpcLatticeV2:
    """VPC Lattice v2 request/response (``version: "2.0"`` without ``requestContext.http``)."""

    @classmethod
    def infer(cls, event: dict[str, Any], context: Any, config: Any) -> bool:
        rc = event.get("requestContext") or {}
        return event.get("version") == "2.0" and "serviceArn" in rc and "http" not in rc

    def __init__(self, event: dict[str, Any], context: Any, config: Any) -> None:
        self.event, self.context, self.config = event, context, config

    @property
    def body(self) -> bytes:
        from mangum.handlers.utils import maybe_encode_body

        raw = self.event.get("body") or b""
        return maybe_encode_body(raw, is_base64=bool(self.event.get("isBase64Encoded")))

    @property
    def scope(self) -> dict[str, Any]:
        from urllib.parse import urlencode

        from mangum.handlers.utils import get_server_and_port

        headers = {
            k.lower(): ",".join(v) if isinstance(v, list) else str(v)
            for k, v in (self.event.get("headers") or {}).items()
        }
        query = urlencode(self.event.get("queryStringParameters") or {}, doseq=True)
        forwarded = headers.get("x-forwarded-for", "").split(",")[0].strip()
        return {
            "type": "http",
            "http_version": "1.1",
            "method": self.event["method"],
            "headers": [[k.encode(), v.encode()] for k, v in headers.items()],
            "path": self.event.get("path") or "/",
            "raw_path": None,
            "root_path": "",
            "scheme": headers.get("x-forwarded-proto", "https"),
            "query_string": query.encode(),
            "server": get_server_and_port(headers),
            "client": (forwarded or None, 0),
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "aws.event": self.event,
            "aws.context": self.context,
        }

    def __call__(self, response: dict[str, Any]) -> dict[str, Any]:
        from mangum.handlers.utils import handle_base64_response_body

        headers: dict[str, str] = {}
        for key, value in response["headers"]:
            name, text = key.decode().lower(), value.decode()
            headers[name] = f"{headers[name]},{text}" if name in headers else text
        body, is_b64 = handle_base64_response_body(
            response["body"], headers, self.config["text_mime_types"]
        )
        return {
            "statusCode": response["status"],
            "headers": headers,
            "body": body,
            "isBase64Encoded": is_b64,
        }


def infer_http(
    event: dict[str, Any],
    context: Any,
    config: dict[str, Any],
    custom: Sequence[type[Any]] = (),
) -> HttpEvent | None:
    """The translator for an HTTP event, or ``None`` if the event is not HTTP.

    ``custom`` (Mangum's ``custom_handlers``) are asked first, in order; their errors
    propagate, since a bug in one should not pass for "not my event".
    """
    from mangum.adapter import HANDLERS

    for handler_cls in custom:
        if handler_cls.infer(event, context, config):
            return handler_cls(event, context, config)
    candidates: tuple[Any, ...] = (VpcLatticeV2, *HANDLERS)
    for handler_cls in candidates:
        try:
            matches = handler_cls.infer(event, context, config)
        except (KeyError, TypeError, AttributeError, IndexError):
            matches = False  # a non-HTTP event of a shape the translator did not expect
        if matches:
            return handler_cls(event, context, config)
    return None


def _event_cookies(event: dict[str, Any]) -> list[str]:
    """Every ``Cookie`` value of the event where translators keep only one or join with ", "."""
    multi = {k.lower(): v for k, v in (event.get("multiValueHeaders") or {}).items()}
    if multi.get("cookie"):  # REST v1, ALB with multi-value headers
        return [str(v) for v in multi["cookie"] if v]
    records = event.get("Records")
    if isinstance(records, list) and records and "cf" in records[0]:  # Lambda@Edge
        entries = records[0]["cf"]["request"].get("headers", {}).get("cookie") or []
        return [str(e.get("value")) for e in entries if e.get("value")]
    return []


def _merge_cookies(headers: list[list[bytes]], event: dict[str, Any]) -> list[list[bytes]]:
    """One ``cookie`` header joined with ``"; "`` (RFC 6265) from every source in the event."""
    values = [v.encode() for v in _event_cookies(event)]
    if not values:
        values = [v for k, v in headers if k == b"cookie"]
    if len(values) <= 1:
        return headers
    rest = [[k, v] for k, v in headers if k != b"cookie"]
    return [*rest, [b"cookie", b"; ".join(values)]]


def _stage_prefix(event: dict[str, Any], path: str) -> str:
    """The part of the public URL path in front of what the app routes on."""
    rc = event.get("requestContext") or {}
    if "resource" in event:  # REST v1: requestContext.path is the full public path
        full = rc.get("path") or ""
        if len(full) > len(path) and full.endswith(path.rstrip("/") or "/"):
            return full[: len(full) - len(path.rstrip("/") or "/")].rstrip("/")
        return ""
    stage = rc.get("stage")
    if event.get("version") == "2.0" and stage and stage != "$default" and "http" in rc:
        prefix = f"/{stage}"
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return ""


def build_scope(
    adapter: HttpEvent,
    event: dict[str, Any],
    state: dict[str, Any] | None,
    *,
    builtin: bool = True,
) -> dict[str, Any]:
    """The ASGI scope for ``event``; ``state=None`` (lifespan "off") adds no ``state``.

    Custom translators (``builtin=False``) build their scope as they mean it: the cookie
    and stage fixes for the AWS event formats are not applied to it.
    """
    scope: dict[str, Any] = adapter.scope
    if builtin:
        scope["headers"] = _merge_cookies(scope["headers"], event)
        prefix = _stage_prefix(event, scope["path"])
        if prefix:
            scope["root_path"] = prefix
            if not scope["path"].startswith(prefix + "/") and scope["path"] != prefix:
                scope["path"] = prefix + scope["path"]
    if state is not None:
        scope["state"] = state.copy()
    return scope


def drop_headers(response: dict[str, Any], exclude: Sequence[str]) -> dict[str, Any]:
    """``response`` without the headers named in ``exclude`` (lower-case names)."""
    if not exclude:
        return response
    kept = [[k, v] for k, v in response["headers"] if k.decode("latin-1").lower() not in exclude]
    return {**response, "headers": kept}


class ProtocolError(RuntimeError):
    """Raised into the app when it breaks the ASGI HTTP response sequence."""


def _error_response(message: str) -> dict[str, Any]:
    body = error_body(message, "server_error", "internal_error")
    return {
        "status": 500,
        "headers": [[b"content-type", b"application/json"]],
        "body": json.dumps(body).encode(),
    }


class _Response:
    """The response an app sends, buffered: Lambda answers with the whole of it at once."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[list[bytes]] = []
        self.chunks: list[bytes] = []
        self.complete = asyncio.Event()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise ProtocolError("'http.response.start' sent twice")
            self.status = int(message["status"])
            self.headers = [list(h) for h in message.get("headers", [])]
        elif kind == "http.response.body":
            if self.status is None:
                raise ProtocolError("'http.response.body' sent before 'http.response.start'")
            if self.complete.is_set():
                raise ProtocolError("'http.response.body' sent after the last body chunk")
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete.set()
        else:
            raise ProtocolError(f"unexpected ASGI message {kind!r} on an HTTP scope")


async def run_http(app: ASGIApp, scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """One request/response cycle, buffered.

    Since nothing has reached the client before the app finishes, any failure before the
    response is complete (an exception, even after ``http.response.start``; a protocol
    error; returning early) becomes a 500 with the JSON error envelope. An exception after
    the response is complete (a background task) is logged and the response kept.
    """
    response = _Response()
    request_sent = False

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await response.complete.wait()
        return {"type": "http.disconnect"}

    where = f"{scope.get('method')} {scope.get('path')}"
    try:
        await app(scope, receive, response.send)
    except Exception:
        if not response.complete.is_set():
            started = " after starting its response (status replaced by 500)"
            log.exception(
                "unhandled error in the app for %s%s", where, started if response.status else ""
            )
            return _error_response("Internal server error")
        log.exception("error in the app for %s after its response was complete", where)
    if not response.complete.is_set():
        missing = "a response" if response.status is None else "the end of its response body"
        log.error("the app returned without sending %s for %s", missing, where)
        return _error_response("Internal server error")
    assert response.status is not None
    return {
        "status": response.status,
        "headers": response.headers,
        "body": b"".join(response.chunks),
    }


def decode_body(result: dict[str, Any]) -> bytes:
    """The raw body of a Lambda HTTP response event (tests, the bench)."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
