"""Errors a client or an operator can see, and the one envelope they are sent in.

Hierarchy::

    AIServiceError                      500 server_error
    ├── InvalidRequestError             400 invalid_request_error
    │   ├── UnprocessableEntityError    422 invalid_request_error
    │   ├── RequestTimeoutError         408 invalid_request_error
    │   ├── PayloadTooLargeError        413 invalid_request_error
    │   └── UnsupportedMediaTypeError   415 invalid_request_error
    ├── AuthenticationError             401 authentication_error
    ├── PermissionDeniedError           403 permission_error
    ├── NotFoundError                   404 not_found_error
    │   └── ModelNotFoundError          404 invalid_request_error / model_not_found
    ├── MethodNotAllowedError           405 invalid_request_error
    ├── ConflictError                   409 invalid_request_error
    ├── RateLimitError                  429 rate_limit_error
    ├── UpstreamError                   502 upstream_error
    ├── ServiceUnavailableError         503 service_unavailable
    └── UpstreamTimeoutError            504 timeout_error

    ConfigError                         not an HTTP error: the CLI exits with code 2
    SecretError                         not an HTTP error: a secret reference did not resolve

Every HTTP error leaves the process as ``{"error": {"message", "type", "code", "param"}}``
(the OpenAI shape, so the official SDKs raise the matching exception class). The message is
written for the client; internal details and stack traces stay in the logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from starlette.types import Send

__all__ = [
    "AIServiceError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "SecretError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "HeaderTooLargeError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "error_body",
    "error_for_status",
    "send_error",
]


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The OpenAI-compatible error envelope."""
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


class AIServiceError(Exception):
    """Base class of every error that maps to an HTTP response."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.code, self.param)


class InvalidRequestError(AIServiceError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class UnprocessableEntityError(InvalidRequestError):
    status_code = 422
    default_code = "invalid_body"


class RequestTimeoutError(InvalidRequestError):
    status_code = 408
    default_code = "body_timeout"


class PayloadTooLargeError(InvalidRequestError):
    status_code = 413
    default_code = "payload_too_large"


class UnsupportedMediaTypeError(InvalidRequestError):
    status_code = 415
    default_code = "unsupported_media_type"


class HeaderTooLargeError(InvalidRequestError):
    status_code = 431
    default_code = "header_too_large"


class AuthenticationError(AIServiceError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(AIServiceError):
    status_code = 403
    error_type = "permission_error"
    default_code = "forbidden"


class NotFoundError(AIServiceError):
    status_code = 404
    error_type = "not_found_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class MethodNotAllowedError(AIServiceError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class ConflictError(AIServiceError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class RateLimitError(AIServiceError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(AIServiceError):
    status_code = 502
    error_type = "upstream_error"
    default_code = "bad_gateway"


class ServiceUnavailableError(AIServiceError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class UpstreamTimeoutError(AIServiceError):
    status_code = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"


_BY_STATUS: dict[int, type[AIServiceError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}


def error_for_status(status: int) -> type[AIServiceError]:
    """The error class for an HTTP status (generic 4xx → 400 class, anything else → 500)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return InvalidRequestError if 400 <= status < 500 else AIServiceError


class ConfigError(Exception):
    """Invalid configuration. Names the file (or environment variable) and the key.

    The CLI prints ``str(error)`` and exits with code 2; the app factory raises it unchanged.
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ", ".join(p for p in (source and f"in {source}", key and f"at {key!r}") if p)
        super().__init__(f"invalid configuration{f' ({where})' if where else ''}: {message}")


class SecretError(Exception):
    """A reference could not be resolved. The message names the reference, never a value."""


async def send_error(
    send: Send, error: AIServiceError, shaped: dict[str, Any] | None = None
) -> None:
    """Send ``error``'s envelope (or the ``shaped`` body given for it) from raw ASGI code
    (middleware runs outside FastAPI's handlers)."""
    body = json.dumps(shaped if shaped is not None else error.to_body()).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
