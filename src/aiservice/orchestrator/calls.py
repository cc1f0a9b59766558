"""One step's HTTP call: build, authenticate, send, retry with backoff and ``Retry-After``.

Each attempt is bounded by the step timeout and by the flow deadline, whichever comes
first; the timeout cancels the request, which closes the connection, so the function on
the other side sees the client go away. Transport errors and timeouts are retried; HTTP
statuses only when listed in ``retry.on_status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ..observability import tracing
from ..observability.context import inject_trace
from ..providers.http import parse_retry_after
from ..security.ssrf import SSRFError
from .auth import StepAuthenticator
from .kinds import ErrorKind
from .model import RetrySpec, StepSpec

__all__ = ["CallResult", "RenderedRequest", "backoff_delay", "call"]

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


def backoff_delay(policy: RetrySpec, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
    ceiling = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    if policy.jitter == "full":
        return (rng or random).uniform(0, ceiling)
    return ceiling


def _encode(body: Any, headers: dict[str, str]) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(body, separators=(",", ":")).encode()


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


def _describe(response: httpx.Response) -> str:
    if response.is_redirect:
        # Following would resend the body and credentials to another origin; a redirect
        # is a failure (the guard would check the hop too, see GuardedTransport).
        return f"HTTP {response.status_code} (redirects are not followed)"
    text = response.text.strip()[:_MAX_ERROR_TEXT] if response.content else ""
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


@dataclass(slots=True)
class _Failure:
    error: str
    kind: ErrorKind
    status: int | None = None
    retryable: bool = True
    retry_after: float | None = None

    def result(self, attempts: int, error: str | None = None) -> CallResult:
        return CallResult(attempts, None, self.status, error or self.error, self.kind)


async def _attempt(
    client: httpx.AsyncClient,
    spec: StepSpec,
    outgoing: httpx.Request,
    auth: StepAuthenticator,
    budget: float,
) -> httpx.Response | _Failure:
    try:
        # Signed per attempt: SigV4 and ID tokens must cover this exact request.
        await auth.apply(spec.auth.type, spec.auth.options(), outgoing)
    except Exception as exc:  # credentials are a configuration problem: do not retry
        message = f"auth {spec.auth.type} failed: {exc}"
        return _Failure(message, ErrorKind.AUTH_FAILED, retryable=False)
    try:
        async with asyncio.timeout(budget):
            response = await client.send(outgoing)
    except SSRFError as exc:  # refused at connect time (e.g. the name now resolves elsewhere)
        return _Failure(exc.message, ErrorKind.URL_NOT_ALLOWED, retryable=False)
    except TimeoutError:
        return _Failure(f"timed out after {budget:.3g}s", ErrorKind.STEP_TIMEOUT)
    except httpx.TimeoutException as exc:  # httpx's own connect bound
        return _Failure(f"{type(exc).__name__}: {exc}", ErrorKind.STEP_TIMEOUT)
    except httpx.HTTPError as exc:
        return _Failure(f"{type(exc).__name__}: {exc}", ErrorKind.UPSTREAM_UNREACHABLE)
    if response.is_success:
        return response
    return _Failure(
        _describe(response),
        ErrorKind.UPSTREAM_STATUS,
        response.status_code,
        retryable=response.status_code in spec.retry.on_status,
        retry_after=parse_retry_after(response.headers),
    )


async def call(
    client: httpx.AsyncClient,
    spec: StepSpec,
    request: RenderedRequest,
    auth: StepAuthenticator,
    *,
    timeout: float,
    deadline: float,
) -> CallResult:
    """Run the step's HTTP call with its retry policy; never raises for upstream failures."""
    with tracing.step_span(request.method, request.url) as span:
        result = await _call(client, spec, request, auth, timeout=timeout, deadline=deadline)
        span.outcome(result.attempts, result.http_status, result.kind)
    return result


async def _call(
    client: httpx.AsyncClient,
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
    policy = spec.retry
    # What the step reports if the flow deadline passed before its first attempt.
    failure = _Failure("not attempted", ErrorKind.STEP_TIMEOUT)
    for attempt in range(1, policy.max_attempts + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return failure.result(attempt - 1, f"{failure.error} (flow deadline reached)")
        try:
            outgoing = client.build_request(
                request.method,
                request.url,
                params=request.query or None,
                headers=headers,
                content=content,
            )
        except httpx.InvalidURL as exc:  # a rendered path or query no URL can hold
            invalid = _Failure(f"invalid URL: {exc}", ErrorKind.REQUEST_NOT_BUILT)
            return invalid.result(attempt - 1)
        outcome = await _attempt(client, spec, outgoing, auth, min(timeout, remaining))
        if isinstance(outcome, httpx.Response):
            return CallResult(attempt, _decode(outcome), outcome.status_code)
        failure = outcome
        if not failure.retryable or attempt == policy.max_attempts:
            break
        # The server's Retry-After wins over our backoff: it knows when it will recover.
        delay = failure.retry_after
        if delay is None:
            delay = backoff_delay(policy, attempt)
        if time.monotonic() + delay >= deadline:
            failure.error += " (retry would pass the flow deadline)"
            break
        log.warning("attempt %d failed (%s); retrying in %.3fs", attempt, failure.error, delay)
        await asyncio.sleep(delay)
    return failure.result(attempt)
