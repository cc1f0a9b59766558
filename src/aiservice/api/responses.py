"""The error envelope as an OpenAPI model, and the ``responses=`` entries that declare it.

Routers declare the statuses their handler can answer (``errors(404, 502)``); the
statuses that come from the HTTP edge (bad JSON, size and time limits, content type,
validation, authentication, rate limits) are added to every operation they apply to by
:mod:`aiservice.api.openapi`, from the same facts the edge itself uses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["STATUS_DESCRIPTIONS", "ErrorDetail", "ErrorResponse", "error_response", "errors"]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(title="ErrorDetail")

    message: str
    type: str
    code: str | None
    param: str | None


class ErrorResponse(BaseModel):
    """``{"error": {"message", "type", "code", "param"}}``: every non-2xx answer."""

    error: ErrorDetail


STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: malformed JSON, a semantic rule broken, a bad header",
    401: "Missing or invalid API key",
    403: "The key may not call this endpoint (admin endpoints)",
    404: "Unknown model, flow, execution or resource",
    408: "The request body did not arrive within limits.body_timeout_seconds",
    409: "Conflicting request (an idempotency key reused with another body)",
    413: "The request body exceeds limits.max_body_bytes",
    415: "The request body is not application/json",
    422: "The body or a parameter does not match the schema",
    429: "Rate limit or budget exceeded",
    500: "Internal error (details are in the service logs, never in the response)",
    502: "An upstream (provider or flow step) failed",
    503: "A dependency is not ready or not reachable",
    504: "An upstream or the flow timed out",
}


def error_response(status: int) -> dict[str, Any]:
    """One OpenAPI response object (FastAPI ``responses=`` form) with the envelope."""
    return {"model": ErrorResponse, "description": STATUS_DESCRIPTIONS[status]}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: error_response(status) for status in statuses}
