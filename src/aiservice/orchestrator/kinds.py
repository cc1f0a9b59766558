"""What went wrong, as a value: the error kinds of executions, steps and requests.

An execution, and each of its steps, records the :class:`ErrorKind` of its failure when it
fails, and the response is chosen from the kind through the one :data:`STATUS` table, never
by reading the message. The kind's value is the envelope's ``code``.

A step's kind says how its call failed; a failed execution's kind is ``flow_timeout``, or
``step_timeout`` / ``step_failed`` after its first failed required step, or one of the
worker kinds. Request kinds are refused before any execution exists.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ..errors import AIServiceError, error_for_status

__all__ = ["STATUS", "ErrorKind"]


class ErrorKind(StrEnum):
    # A failed execution.
    FLOW_TIMEOUT = "flow_timeout"
    STEP_TIMEOUT = "step_timeout"  # also a step's: an attempt ran out of time
    STEP_FAILED = "step_failed"
    WORKER_LOST = "worker_lost"  # its worker died (no lease) or too many workers did
    CANCELLED = "cancelled"  # also a step's: stopped by a failure elsewhere or a shutdown
    FLOW_GONE = "flow_gone"  # resumed after its flow was removed from the configuration
    # A failed step.
    UPSTREAM_STATUS = "upstream_status"  # the function answered an error status or redirect
    UPSTREAM_UNREACHABLE = "upstream_unreachable"  # connection or protocol error
    RESPONSE_TOO_LARGE = "response_too_large"  # over limits.max_upstream_body_bytes
    URL_NOT_ALLOWED = "url_not_allowed"  # refused by the SSRF guard (also a request's)
    AUTH_FAILED = "auth_failed"  # the step's credentials could not be obtained
    REQUEST_NOT_BUILT = "request_not_built"  # template, secret or URL could not be rendered
    # A refused request.
    INVALID_INPUT = "invalid_input"
    FLOW_NOT_FOUND = "flow_not_found"
    EXECUTION_NOT_FOUND = "execution_not_found"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    STATE_UNAVAILABLE = "state_unavailable"
    QUEUE_UNAVAILABLE = "queue_unavailable"

    @property
    def status(self) -> int:
        return STATUS[self]

    def error(self, message: str, *, param: str | None = None) -> AIServiceError:
        """The client-facing error for this kind: its status, its envelope type and code."""
        return error_for_status(self.status)(message, code=self.value, param=param)


# The one place a kind becomes an HTTP status. A failed execution answers 502, or 504 when
# it or a step ran out of time; the kinds a single step can have are listed with the status
# they would give if they were the execution's (they never are: see the module docstring).
STATUS: Final = MappingProxyType(
    {
        ErrorKind.FLOW_TIMEOUT: 504,
        ErrorKind.STEP_TIMEOUT: 504,
        ErrorKind.STEP_FAILED: 502,
        ErrorKind.WORKER_LOST: 502,
        ErrorKind.CANCELLED: 502,
        ErrorKind.FLOW_GONE: 502,
        ErrorKind.UPSTREAM_STATUS: 502,
        ErrorKind.UPSTREAM_UNREACHABLE: 502,
        ErrorKind.RESPONSE_TOO_LARGE: 502,
        ErrorKind.URL_NOT_ALLOWED: 400,
        ErrorKind.AUTH_FAILED: 502,
        ErrorKind.REQUEST_NOT_BUILT: 502,
        ErrorKind.INVALID_INPUT: 400,
        ErrorKind.FLOW_NOT_FOUND: 404,
        ErrorKind.EXECUTION_NOT_FOUND: 404,
        ErrorKind.IDEMPOTENCY_KEY_REUSED: 409,
        ErrorKind.STATE_UNAVAILABLE: 503,
        ErrorKind.QUEUE_UNAVAILABLE: 503,
    }
)
