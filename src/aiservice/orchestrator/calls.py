"""One step's HTTP call: build, authenticate, send, retry with backoff and ``Retry-After``.

Each attempt is bounded by the step timeout and by the flow deadline, whichever comes
first; the timeout cancels the request, which closes the connection, so the function on
the other side sees the client go away. Transport errors and timeouts are retried; HTTP
statuses only when listed in ``retry.on_status``. The retry loop is the transport's
(:func:`~aiservice.transport.retry.call_with_retries`), shared with the gateway and
webhooks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..observability import tracing
from ..observability.context import inject_trace
from ..security.ssrf import SSRFError
from ..transport.auth import HeaderAuth, Outgoing, with_auth
from ..transport.client import (
    Answer,
    GuardedClient,
    InvalidURLError,
    TransportError,
    build_request,
)
from ..transport.errors import BodyTooLargeError
from ..transport.retry import RetryPolicy, call_with_retries, parse_retry_after
from .kinds import ErrorKind
from .model import RetrySpec, StepSpec

if TYPE_CHECKING:
    from .auth import StepAuthenticator

__all__ = ["CallResult", "RenderedRequest", "backoff_delay", "call", "retry_policy"]

log = logging.getLogger("aiservice.orchestrator")

_MAX_ERROR_TEXT = 300


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any]
    body: Any


@dataclass(slots=True)
class CallResult:
    attempts: int
    output: Any = None
    http_status: int | None = None
    error: str | None = None
    kind: ErrorKind | None = None  # why it failed; None when it succeeded

    @property
    def ok(self) -> bool:
        return self.kind is None


def retry_policy(spec: RetrySpec) -> RetryPolicy:
    """A flow's ``retry`` block as the transport's policy; a ``Retry-After`` is always
    honoured (the flow deadline still bounds it)."""
    return RetryPolicy(
        max_retries=spec.max_attempts - 1,
        backoff=spec.initial_delay,
        multiplier=spec.multiplier,
        max_backoff=spec.max_delay,
        jitter=spec.jitter == "full",
        max_retry_after=None,
    )


def backoff_delay(policy: RetrySpec, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
    return retry_policy(policy).backoff_delay(attempt, rng)


def _encode(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body, separators=(",", ":")).encode()


def _decode(answer: Answer) -> Any:
    if not answer.body:
        return None
    if "json" in answer.headers.get("content-type", ""):
        try:
            return answer.json()
        except ValueError:
            pass
    return answer.text


def _describe(answer: Answer) -> str:
    if answer.is_redirect:
        # Following would resend the body and credentials to another origin; a redirect
        # is a failure.
        return f"HTTP {answer.status} (redirects are not followed)"
    text = answer.text.strip()[:_MAX_ERROR_TEXT] if answer.body else ""
    return f"HTTP {answer.status}" + (f": {text}" if text else "")


class _Failure(Exception):
    """One failed attempt, as the retry loop judges it (``retryable``, ``retry_after``)."""

    def __init__(
        self,
        error: str,
        kind: ErrorKind,
        status: int | None = None,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error)
        self.error, self.kind, self.status = error, kind, status
        self.retryable, self.retry_after = retryable, retry_after

    def result(self, attempts: int, error: str | None = None) -> CallResult:
        return CallResult(attempts, None, self.status, error or self.error, self.kind)


async def _attempt(
    client: GuardedClient, spec: StepSpec, outgoing: Outgoing, auth: HeaderAuth, budget: float
) -> Answer:
    try:
        # Signed per attempt: SigV4 and ID tokens must cover this exact request.
        outgoing = await with_auth(outgoing, auth)
    except Exception as exc:  # credentials are a configuration problem: do not retry
        message = f"auth {spec.auth.type} failed: {exc}"
        raise _Failure(message, ErrorKind.AUTH_FAILED, retryable=False) from exc
    try:
        async with asyncio.timeout(budget):
            answer = await client.send(outgoing)
    except SSRFError as exc:  # refused at connect time (e.g. the name now resolves elsewhere)
        raise _Failure(exc.message, ErrorKind.URL_NOT_ALLOWED, retryable=False) from exc
    except TimeoutError as exc:
        raise _Failure(f"timed out after {budget:.3g}s", ErrorKind.STEP_TIMEOUT) from exc
    except TransportError as exc:
        if isinstance(exc.__cause__, BodyTooLargeError):
            # Over limits.max_upstream_body_bytes: it would be as large the next time.
            raise _Failure(exc.message, ErrorKind.RESPONSE_TOO_LARGE, retryable=False) from exc
        timed_out = exc.failure == "timeout"  # aiohttp's own connect bound
        kind = ErrorKind.STEP_TIMEOUT if timed_out else ErrorKind.UPSTREAM_UNREACHABLE
        raise _Failure(exc.message, kind) from exc
    if answer.ok:
        return answer
    raise _Failure(
        _describe(answer),
        ErrorKind.UPSTREAM_STATUS,
        answer.status,
        retryable=answer.status in spec.retry.on_status,
        retry_after=parse_retry_after(answer.headers),
    )


async def call(
    client: GuardedClient,
    spec: StepSpec,
    request: RenderedRequest,
    auth: StepAuthenticator,
    *,
    timeout: float,
    deadline: float,
) -> CallResult:
    """Run the step's HTTP call with its retry policy; never raises for upstream failures.
    ``deadline`` is on :func:`time.monotonic`."""
    with tracing.step_span(request.method, request.url) as span:
        result = await _call(client, spec, request, auth, timeout=timeout, deadline=deadline)
        span.outcome(result.attempts, result.http_status, result.kind)
    return result


async def _call(
    client: GuardedClient,
    spec: StepSpec,
    request: RenderedRequest,
    auth: StepAuthenticator,
    *,
    timeout: float,
    deadline: float,
) -> CallResult:
    headers = dict(request.headers)
    # Once per step call: every retry of it is the same client span.
    inject_trace(headers)
    content = _encode(request.body, headers) if request.method != "GET" else None
    try:
        outgoing = build_request(
            request.method, request.url, headers=headers, query=request.query, body=content
        )
    except InvalidURLError as exc:  # a rendered path or query no URL can hold
        return _Failure(f"invalid URL: {exc}", ErrorKind.REQUEST_NOT_BUILT).result(0)
    try:
        step_auth = auth.bind(spec.auth.type, spec.auth.options())
    except Exception as exc:
        message = f"auth {spec.auth.type} failed: {exc}"
        return _Failure(message, ErrorKind.AUTH_FAILED).result(1)  # as if applied, and failed
    attempts = 0
    # What the step reports if the flow deadline passed before its first attempt.
    last = _Failure("not attempted", ErrorKind.STEP_TIMEOUT)

    async def attempt() -> Answer:
        nonlocal attempts, last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error = f"{last.error} (flow deadline reached)"
            raise _Failure(error, last.kind, last.status, retryable=False)
        attempts += 1
        try:
            return await _attempt(client, spec, outgoing, step_auth, min(timeout, remaining))
        except _Failure as failure:
            last = failure
            raise

    def retrying(n: int, exc: BaseException, delay: float) -> None:
        log.warning("attempt %d failed (%s); retrying in %.3fs", n, exc, delay)

    policy = retry_policy(spec.retry)
    try:
        answer = await call_with_retries(
            policy, attempt, deadline=deadline, clock=time.monotonic, on_retry=retrying
        )
    except _Failure as failure:
        error = failure.error
        if failure.retryable and attempts <= policy.max_retries:
            error += " (retry would pass the flow deadline)"
        return failure.result(attempts, error)
    return CallResult(attempts, _decode(answer), answer.status)
