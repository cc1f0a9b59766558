"""Upstream HTTP helpers without I/O, shared by the HTTP providers: auth headers, JSON
encoding, error mapping for a read answer and the streaming parsers (Server-Sent Events,
newline-delimited JSON) over lines.

The I/O itself is :mod:`.upstream` over :mod:`aiservice.transport`; this module imports no
HTTP library.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..observability.redact import REDACTED, redact, register_secret
from ..transport.retry import parse_retry_after
from .base import ErrorKind, ProviderError

if TYPE_CHECKING:
    from ..secrets.base import SecretResolver
    from ..transport.auth import Outgoing

__all__ = [
    "KeyHeaders",
    "Reply",
    "ServerSentEvent",
    "bearer",
    "encode_json",
    "error_from_response",
    "iter_ndjson",
    "iter_sse",
    "parse_retry_after",
    "scrub",
]

_MAX_ERROR_TEXT = 500


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream answer read in full: what error mapping and JSON decoding need."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class KeyHeaders:
    """A provider's auth headers from its ``api_key`` (a literal or a ``secret://``
    reference), resolved on every request so a rotated secret needs no restart; the
    resolver caches with its TTL, and the headers are rebuilt only when the value changes.
    No key configured: no headers (local servers).

    A :class:`~aiservice.transport.auth.HeaderAuth`: an API key does not depend on the
    request, so calling the object (no request at hand) gives the same headers."""

    def __init__(
        self,
        secrets: SecretResolver,
        reference: str | None,
        build: Callable[[str], dict[str, str]] = bearer,
    ) -> None:
        self._secrets, self._reference, self._build = secrets, reference, build
        self._last: tuple[str, dict[str, str]] | None = None

    async def headers(self, request: Outgoing | None = None) -> dict[str, str]:
        if not self._reference:
            return {}
        key = await self._secrets.resolve(self._reference)
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        register_secret(key)  # literal keys too: never in a log line
        headers = self._build(key)
        self._last = (key, headers)
        return headers

    async def __call__(self) -> dict[str, str]:
        return await self.headers()


def encode_json(body: Any) -> bytes:
    """JSON the way httpx encodes ``json=`` (compact, UTF-8, no NaN).

    A lone UTF-16 surrogate cannot be encoded as UTF-8; the body is then sent with
    ``\\uXXXX`` escapes (still valid JSON text) and the upstream judges it, instead of
    the encoder raising out of the provider."""
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


def _upstream_message(response: Reply) -> str:
    try:
        body = response.json()
    except ValueError:  # UnicodeDecodeError is one
        text = response.text.strip() if response.body else ""
        return text[:_MAX_ERROR_TEXT] or response.reason
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


def error_from_response(response: Reply, provider: str) -> ProviderError:
    """A :class:`ProviderError` for a non-2xx upstream response (body must be read)."""
    status = response.status
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


def scrub(error: ProviderError, secrets: Iterable[str]) -> ProviderError:
    """``error`` with every secret (and every registered secret) masked in its message."""
    message = error.message
    for secret in secrets:
        if secret:
            message = message.replace(secret, REDACTED)
    message = redact(message)
    if message == error.message:
        return error
    return ProviderError(
        message,
        kind=error.kind,
        status=error.status,
        retry_after=error.retry_after,
        provider=error.provider,
    )


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(batches: AsyncIterable[list[str]]) -> AsyncIterator[ServerSentEvent]:
    """Parse ``text/event-stream`` lines (in batches, as they arrived) per the WHATWG
    rules (multi-line data, comments, ids)."""
    event, last_id = "", None
    data: list[str] = []
    async for lines in batches:
        for line in lines:
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


async def iter_ndjson(batches: AsyncIterable[list[str]]) -> AsyncIterator[Any]:
    """One JSON value per non-empty line (Ollama's streaming format)."""
    async for lines in batches:
        for line in lines:
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ProviderError(
                    f"invalid NDJSON line from upstream: {text[:100]!r}", kind="protocol"
                ) from exc
            yield value
