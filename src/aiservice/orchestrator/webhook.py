"""Completion webhooks per the Standard Webhooks specification (standardwebhooks.com).

Headers: ``webhook-id`` (stable across retries, so receivers can deduplicate),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,`` + base64
HMAC-SHA256 over ``{id}.{timestamp}.{body}``. A ``whsec_``-prefixed secret is base64 key
material as the spec defines; any other string is used as UTF-8 bytes.

The signature headers are a :class:`~aiservice.transport.auth.HeaderAuth`
(:class:`WebhookSigner`), asked on every attempt like step auth, so each attempt carries a
fresh timestamp. Delivery retries through the transport's retry loop, with jittered
exponential backoff (or the receiver's ``Retry-After``) on 429, 5xx, timeouts and transport
errors, and never follows redirects: a 3xx is a failed delivery (following it would let a
receiver bounce us to an address the SSRF guard refused).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..observability.context import inject_trace
from ..security.ssrf import SSRFError
from ..transport.auth import Outgoing
from ..transport.client import GuardedClient, InvalidURLError, TransportError, build_request
from ..transport.retry import RetryPolicy, call_with_retries, parse_retry_after
from .record import WebhookReport

__all__ = ["WebhookPolicy", "WebhookSender", "WebhookSigner", "sign", "verify"]

log = logging.getLogger("aiservice.orchestrator.webhook")

_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    if secret.startswith(_PREFIX):
        return base64.b64decode(secret[len(_PREFIX) :])
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, tolerance: float = 300) -> bool:
    """Receiver side: any ``v1`` signature matches and the timestamp is fresh."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


class WebhookSigner:
    """The Standard Webhooks headers for one message (a ``HeaderAuth``): its id, the
    attempt's timestamp and, with a secret, the signature over the exact body sent."""

    def __init__(self, secret: str | None, msg_id: str) -> None:
        self._secret, self._msg_id = secret, msg_id

    async def headers(self, request: Outgoing) -> Mapping[str, str]:
        timestamp = int(time.time())
        headers = {"webhook-id": self._msg_id, "webhook-timestamp": str(timestamp)}
        if self._secret:
            body = request.body or b""
            headers["webhook-signature"] = sign(self._secret, self._msg_id, timestamp, body)
        return headers


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    timeout: float
    max_attempts: int
    initial_delay: float
    max_delay: float = 30.0

    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_attempts - 1,
            backoff=self.initial_delay,
            max_backoff=self.max_delay,
            max_retry_after=None,
        )


class _Failed(Exception):
    def __init__(
        self, error: str, *, retryable: bool, status: int | None = None, after: float | None = None
    ) -> None:
        super().__init__(error)
        self.error, self.retryable, self.status, self.retry_after = error, retryable, status, after


class WebhookSender:
    """Signs and delivers one message with retries; returns a delivery report."""

    def __init__(self, policy: WebhookPolicy) -> None:
        self.policy = policy

    async def deliver(
        self,
        client: GuardedClient,
        url: str,
        secret: str | None,
        msg_id: str,
        payload: dict[str, Any],
    ) -> WebhookReport:
        report = WebhookReport()
        headers = {"content-type": "application/json"}
        inject_trace(headers)
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            request = build_request("POST", url, headers=headers, body=body)
        except InvalidURLError as exc:
            report.error = f"invalid URL: {exc}"
            return report
        signer = WebhookSigner(secret, msg_id)

        async def attempt() -> None:
            report.attempts += 1
            try:
                async with asyncio.timeout(self.policy.timeout):
                    answer = await client.send(request, signer)
            except SSRFError as exc:  # refused at connect time
                raise _Failed(exc.message, retryable=False) from exc
            except TimeoutError as exc:
                raise _Failed(type(exc).__name__, retryable=True) from exc
            except TransportError as exc:
                raise _Failed(exc.message, retryable=exc.failure != "protocol") from exc
            report.http_status = answer.status
            if not answer.ok:
                redirect = " (redirects are not followed)" if 300 <= answer.status < 400 else ""
                raise _Failed(
                    f"HTTP {answer.status}{redirect}",
                    retryable=answer.status == 429 or answer.status >= 500,
                    status=answer.status,
                    after=parse_retry_after(answer.headers),
                )

        def retrying(n: int, exc: BaseException, delay: float) -> None:
            log.warning("webhook attempt %d failed (%s); retrying in %.3fs", n, exc, delay)

        try:
            await call_with_retries(self.policy.retry(), attempt, on_retry=retrying)
        except _Failed as failed:
            report.error = failed.error
            log.warning("webhook delivery failed after %d attempts: %s", report.attempts, failed)
            return report
        report.status, report.error = "delivered", None
        return report
