"""Completion webhooks per the Standard Webhooks specification (standardwebhooks.com).

Headers: ``webhook-id`` (stable across retries, so receivers can deduplicate),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,`` + base64
HMAC-SHA256 over ``{id}.{timestamp}.{body}``. A ``whsec_``-prefixed secret is base64 key
material as the spec defines; any other string is used as UTF-8 bytes.

Delivery retries with exponential backoff (or the receiver's ``Retry-After``) on 429, 5xx,
timeouts and transport errors, and never follows redirects: a 3xx is a failed delivery
(following it would let a receiver bounce us to an address the SSRF guard refused).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ..observability.context import inject_trace
from ..providers.http import parse_retry_after
from ..security.ssrf import SSRFError
from .record import WebhookReport

__all__ = ["WebhookSender", "sign", "verify"]

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


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    timeout: float
    max_attempts: int
    initial_delay: float
    max_delay: float = 30.0


class WebhookSender:
    """Signs and delivers one message with retries; returns a delivery report."""

    def __init__(self, policy: WebhookPolicy) -> None:
        self.policy = policy

    async def deliver(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str | None,
        msg_id: str,
        payload: dict[str, Any],
    ) -> WebhookReport:
        body = json.dumps(payload, separators=(",", ":")).encode()
        report = WebhookReport()
        policy = self.policy
        for attempt in range(1, policy.max_attempts + 1):
            report.attempts = attempt
            timestamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": msg_id}
            headers["webhook-timestamp"] = str(timestamp)
            inject_trace(headers)
            if secret:
                headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
            retry_after: float | None = None
            try:
                async with asyncio.timeout(policy.timeout):
                    response = await client.post(url, content=body, headers=headers)
            except SSRFError as exc:  # refused at connect time
                report.error = exc.message
                break
            except httpx.InvalidURL as exc:  # not an HTTPError: it would escape the loop
                report.error = f"invalid URL: {exc}"
                break
            except (TimeoutError, httpx.HTTPError) as exc:
                report.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                retryable = not isinstance(exc, httpx.UnsupportedProtocol)
            else:
                status = response.status_code
                report.http_status = status
                if response.is_success:
                    report.status, report.error = "delivered", None
                    return report
                report.error = f"HTTP {status}" + (
                    " (redirects are not followed)" if 300 <= status < 400 else ""
                )
                retryable = status == 429 or status >= 500
                retry_after = parse_retry_after(response.headers)
            if not retryable or attempt == policy.max_attempts:
                break
            delay = retry_after
            if delay is None:
                delay = min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1))
            log.warning(
                "webhook attempt %d failed (%s); retrying in %.3fs", attempt, report.error, delay
            )
            await asyncio.sleep(delay)
        log.warning("webhook delivery failed after %d attempts: %s", report.attempts, report.error)
        return report
