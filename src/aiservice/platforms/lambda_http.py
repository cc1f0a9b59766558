"""HTTP events on Lambda: Mangum's event translators plus the fixes Mangum lacks.

Mangum turns API Gateway (REST v1, HTTP API v2), ALB and Function URL events into ASGI
scopes and responses back into events. On top of it:

* VPC Lattice v2 events (Mangum sends them to its HTTP API handler, which fails);
* every ``Cookie`` header value is joined with ``"; "`` (Mangum joins REST v1 multi-value
  headers with ``", "`` and ALB gives several ``cookie`` headers, so the app saw one cookie);
* the API Gateway stage (or custom-domain base path) becomes ``root_path``, so URLs the
  app builds (``/docs`` -> ``openapi.json``) include it;
* the app runs on the caller's event loop (see :mod:`.aws_lambda`), not a fresh one.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message

__all__ = ["HttpEvent", "VpcLatticeV2", "build_scope", "decode_body", "infer_http", "run_http"]

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


def infer_http(event: dict[str, Any], context: Any, config: dict[str, Any]) -> HttpEvent | None:
    """The translator for an HTTP event, or ``None`` if the event is not HTTP."""
    from mangum.adapter import HANDLERS

    candidates: tuple[Any, ...] = (VpcLatticeV2, *HANDLERS)
    for handler_cls in candidates:
        try:
            matches = handler_cls.infer(event, context, config)
        except (KeyError, TypeError, AttributeError):
            matches = False
        if matches:
            return handler_cls(event, context, config)
    return None


def _merge_cookies(headers: list[list[bytes]], event: dict[str, Any]) -> list[list[bytes]]:
    """One ``cookie`` header joined with ``"; "`` from every source in the event."""
    multi = {k.lower(): v for k, v in (event.get("multiValueHeaders") or {}).items()}
    values = [v.encode() for v in multi.get("cookie") or [] if v]
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


def build_scope(adapter: HttpEvent, event: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = adapter.scope
    scope["headers"] = _merge_cookies(scope["headers"], event)
    prefix = _stage_prefix(event, scope["path"])
    if prefix:
        scope["root_path"] = prefix
        if not scope["path"].startswith(prefix + "/") and scope["path"] != prefix:
            scope["path"] = prefix + scope["path"]
    scope["state"] = state.copy()
    return scope


def _error_response(status: int, message: str) -> dict[str, Any]:
    body = {"error": {"message": message, "type": "server_error", "code": None, "param": None}}
    return {
        "status": status,
        "headers": [[b"content-type", b"application/json"]],
        "body": json.dumps(body).encode(),
    }


async def run_http(app: ASGIApp, scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    """One request/response cycle; the whole body is buffered (Lambda answers at once)."""
    import asyncio

    status: int | None = None
    headers: list[list[bytes]] = []
    chunks: list[bytes] = []
    finished = asyncio.Event()
    request_sent = False

    async def receive() -> Message:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status, headers = message["status"], [list(h) for h in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    except Exception:
        log.exception("unhandled error in the app for %s %s", scope["method"], scope["path"])
        if status is None:
            return _error_response(500, "Internal server error")
    if status is None:
        return _error_response(502, "the app returned no response")
    return {"status": status, "headers": headers, "body": b"".join(chunks)}


def decode_body(result: dict[str, Any]) -> bytes:
    """The raw body of a Lambda HTTP response event (tests, the bench)."""
    body = result.get("body") or ""
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
