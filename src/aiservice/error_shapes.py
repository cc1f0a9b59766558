"""The error body a client gets, chosen by the API it called.

Every route answers errors in the OpenAI envelope (:func:`aiservice.errors.error_body`)
except the Anthropic Messages API routes (``/v1/messages`` and below), whose clients (the
official ``anthropic`` SDK, Claude Code) read Anthropic's shape::

    {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}}

The status is the same either way; only the body changes. The choice is made from the
request path alone, so the edge (the auth gate, the body limits) shapes its early answers
before any route runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import AIServiceError

__all__ = [
    "ANTHROPIC_PATH",
    "anthropic_error",
    "anthropic_error_type",
    "error_body_for",
    "is_anthropic_path",
    "route_path",
]

ANTHROPIC_PATH = "/v1/messages"

_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
"""Anthropic's documented error types by status; other 4xx are ``invalid_request_error``,
other 5xx ``api_error``."""


def anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body (also the data of a stream's ``error`` event)."""
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def route_path(scope: Mapping[str, Any]) -> str:
    """The path the app routes on: ``scope["path"]`` without the ``root_path`` prefix."""
    path: str = scope.get("path") or ""
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def is_anthropic_path(path: str) -> bool:
    return path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/")


def error_body_for(error: AIServiceError, scope: Mapping[str, Any]) -> dict[str, Any]:
    """``error``'s body in the shape of the API the request in ``scope`` called."""
    if is_anthropic_path(route_path(scope)):
        return anthropic_error(error.status_code, error.message)
    return error.to_body()
