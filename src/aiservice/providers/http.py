"""HTTP plumbing shared by the HTTP providers: client construction, error mapping and
streaming parsers (Server-Sent Events and newline-delimited JSON).

Only transport concerns live here; each provider module keeps its own translation.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ..security.redact import redact
from .base import ErrorKind, ProviderError

if TYPE_CHECKING:
    from ..config import ProviderSettings

__all__ = [
    "ServerSentEvent",
    "build_client",
    "error_from_exception",
    "error_from_response",
    "iter_ndjson",
    "iter_sse",
    "parse_retry_after",
]

_MAX_ERROR_TEXT = 500


def build_client(
    config: ProviderSettings,
    base_url: str,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """One pooled client per provider; per-request auth headers are added by the caller."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={**(headers or {}), **config.headers},
        timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _upstream_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        text = response.text.strip() if response.content else ""
        return text[:_MAX_ERROR_TEXT] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg")
            if isinstance(message, str):
                return message[:_MAX_ERROR_TEXT]
        elif isinstance(error, str):
            return error[:_MAX_ERROR_TEXT]
        message = body.get("message")
        if isinstance(message, str):
            return message[:_MAX_ERROR_TEXT]
    return json.dumps(body)[:_MAX_ERROR_TEXT]


def error_from_response(response: httpx.Response, provider: str) -> ProviderError:
    """A :class:`ProviderError` for a non-2xx upstream response (body must be read)."""
    status = response.status_code
    kind: ErrorKind = "auth" if status in (401, 403) else "http"
    # Upstreams echo credentials ("Incorrect API key provided: sk-..."); every key we send
    # is registered with the redactor, so it is masked here before it can reach a client.
    message = redact(_upstream_message(response))
    return ProviderError(
        f"{provider} returned HTTP {status}: {message}",
        kind=kind,
        status=status,
        retry_after=parse_retry_after(response.headers),
        provider=provider,
    )


def error_from_exception(exc: httpx.HTTPError, provider: str) -> ProviderError:
    """Map a transport exception; the message names the provider, never a credential."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(
            f"{provider} timed out ({type(exc).__name__})", kind="timeout", provider=provider
        )
    if isinstance(exc, httpx.ConnectError | httpx.RemoteProtocolError | httpx.ReadError):
        return ProviderError(
            f"{provider} connection failed ({type(exc).__name__})",
            kind="connect",
            provider=provider,
        )
    return ProviderError(
        f"{provider} request failed ({type(exc).__name__})", kind="protocol", provider=provider
    )


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(response: httpx.Response) -> AsyncIterator[ServerSentEvent]:
    """Parse ``text/event-stream`` per the WHATWG rules (multi-line data, comments, ids)."""
    event, last_id = "", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data), last_id)


async def iter_ndjson(response: httpx.Response) -> AsyncIterator[Any]:
    """One JSON value per non-empty line (Ollama's streaming format)."""
    async for line in response.aiter_lines():
        line = line.strip()
        if line:
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ProviderError(
                    f"invalid NDJSON line from upstream: {line[:100]!r}", kind="protocol"
                ) from exc
