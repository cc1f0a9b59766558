"""Exception handlers: every error a client sees is the OpenAI-style envelope, or on the
Anthropic Messages API routes Anthropic's error body (:mod:`aiservice.error_shapes`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..error_shapes import error_body_for
from ..errors import AIServiceError, UnprocessableEntityError, error_for_status

__all__ = ["install_error_handlers"]

log = logging.getLogger("aiservice.http")

_HTTP_MESSAGES = {
    404: "no route matches this path",
    405: "method not allowed for this path",
}


def _response(error: AIServiceError, request: Request) -> JSONResponse:
    body = error_body_for(error, request.scope)
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AIServiceError)
    if exc.status_code >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    return _response(exc, request)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    carried = getattr(exc, "error", None)  # raised from ASGI code that had the error at hand
    if isinstance(carried, AIServiceError):
        return _response(carried, request)
    cls = error_for_status(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if detail in (None, "Not Found", "Method Not Allowed"):
        detail = _HTTP_MESSAGES.get(exc.status_code, detail or "request failed")
    error = cls(detail or "request failed", headers=exc.headers)
    response = _response(error, request)
    response.status_code = exc.status_code
    return response


def _loc(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    if first.get("type") == "json_invalid":
        message = "request body is not valid JSON"
        param = None
    else:
        where = _loc(first.get("loc", ()))
        message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        param = where
    return _response(UnprocessableEntityError(message, param=param), request)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return _response(AIServiceError("internal server error"), request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AIServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
