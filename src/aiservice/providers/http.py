"""HTTP plumbing shared by the HTTP providers: client construction, error mapping and
streaming parsers (Server-Sent Events and newline-delimited JSON).

Only transport concerns live here; each provider module keeps its own translation.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from ..security.redact import redact, register_secret
from .base import ErrorKind, ProviderError

if TYPE_CHECKING:
    from ..config import ProviderSettings
    from ..secrets.base import SecretResolver

__all__ = [
    "Endpoints",
    "KeyHeaders",
    "ServerSentEvent",
    "ShardedTransport",
    "build_client",
    "encode_json",
    "error_from_exception",
    "error_from_response",
    "iter_ndjson",
    "iter_sse",
    "parse_retry_after",
    "post_json",
    "response_json",
]

_MAX_ERROR_TEXT = 500


MAX_CONNECTIONS = 200
MAX_KEEPALIVE = 50
POOL_SHARDS = 8
SHARD_TARGET = 4
"""In-flight requests a shard takes before the next shard is used (fill first)."""


class _Release(httpx.AsyncByteStream):
    """A response body that frees its shard's slot once, when the body is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream, self._release = stream, release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        release, self._release = self._release, _noop
        try:
            await self._stream.aclose()
        finally:
            release()


def _noop() -> None:
    return None


class ShardedTransport(httpx.AsyncBaseTransport):
    """Connection pools side by side; a request goes to the first with a free slot.

    httpcore's pool walks every connection twice per request (polling each idle socket,
    and counting idle connections once per idle connection: quadratic), so at a few dozen
    concurrent upstream calls that walk was the largest cost of a gateway request. Shards
    of a few connections each keep every walk short. Filling the first shard first keeps
    light traffic on one warm connection (no extra TLS handshakes), as a single pool would.
    """

    def __init__(self, shards: int = POOL_SHARDS, target: int = SHARD_TARGET) -> None:
        per_shard = httpx.Limits(
            max_connections=-(-MAX_CONNECTIONS // shards),
            max_keepalive_connections=-(-MAX_KEEPALIVE // shards),
        )
        # One SSL context for every shard: loading the CA bundle costs tens of ms each.
        verify = httpx.create_ssl_context()
        self._pools = [
            httpx.AsyncHTTPTransport(limits=per_shard, verify=verify) for _ in range(shards)
        ]
        self._busy = [0] * shards
        self._target = target

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests per shard whose response is not closed yet."""
        return tuple(self._busy)

    def _pick(self) -> int:
        busy = self._busy
        for index, count in enumerate(busy):
            if count < self._target:
                return index
        return busy.index(min(busy))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self._busy[index] += 1

        def release() -> None:
            self._busy[index] -= 1

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Release(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


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
        transport=ShardedTransport(),
        follow_redirects=False,
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class KeyHeaders:
    """A provider's auth headers from its ``api_key`` (a literal or a ``secret://``
    reference), resolved on every request so a rotated secret needs no restart; the
    resolver caches with its TTL, and the headers are rebuilt only when the value changes.
    No key configured: no headers (local servers)."""

    def __init__(
        self,
        secrets: SecretResolver,
        reference: str | None,
        build: Callable[[str], dict[str, str]] = bearer,
    ) -> None:
        self._secrets, self._reference, self._build = secrets, reference, build
        self._last: tuple[str, dict[str, str]] | None = None

    async def __call__(self) -> dict[str, str]:
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


def response_json(response: httpx.Response, provider: str) -> Any:
    """The JSON body of an upstream answer; a :class:`ProviderError` for a non-2xx
    status or a body that is not JSON."""
    if response.status_code >= 400:
        raise error_from_response(response, provider)
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(
            f"{provider} returned invalid JSON", kind="protocol", provider=provider
        ) from exc


class Endpoints:
    """Absolute upstream URLs, each built once: given a relative path (and query
    parameters), httpx parses and merges it with the base URL again on every request."""

    def __init__(self, client: httpx.AsyncClient, params: Mapping[str, str] | None = None):
        self._client = client
        self._params = dict(params) if params else None
        self._urls: dict[str, httpx.URL] = {}

    def __call__(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:  # exactly the URL httpx would build for this client
            url = self._client.build_request("GET", path, params=self._params).url
            self._urls[path] = url
        return url


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


async def post_json(
    client: httpx.AsyncClient,
    url: httpx.URL,
    body: Any,
    *,
    provider: str,
    headers: Mapping[str, str],
) -> Any:
    """POST ``body`` as JSON to ``url`` (from :class:`Endpoints`) and return the JSON
    answer, errors mapped to :class:`ProviderError`."""
    content = encode_json(body)
    try:
        response = await client.post(
            url, content=content, headers={**headers, "content-type": "application/json"}
        )
    except httpx.HTTPError as exc:
        raise error_from_exception(exc, provider) from exc
    return response_json(response, provider)


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
