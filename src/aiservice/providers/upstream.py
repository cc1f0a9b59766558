"""The HTTP providers' upstream client: a tiny interface over the shared transport.

Every provider of the process uses one aiohttp session per event loop (one connection
pool, one DNS cache, one SSL context: :data:`aiservice.transport.session.POOL`), closed
when the last provider using it is closed.

Translation modules never see aiohttp: they call :meth:`UpstreamClient.request` /
:meth:`UpstreamClient.json` (status, headers, bytes) or :meth:`UpstreamClient.lines`
(the lines of a streamed answer, as they arrive). Every failure leaves as a
:class:`ProviderError`, mapped here from the transport's classification
(:func:`aiservice.transport.errors.classify`) and nowhere else, with the call's
credential scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from yarl import URL

from ..errors import SecretError
from ..observability.context import inject_trace
from ..transport import limits
from ..transport.auth import NO_AUTH, HeaderAuth, Outgoing
from ..transport.errors import TRANSPORT_ERRORS, BodyTooLargeError, classify, read_body
from ..transport.lines import LineSplitter
from ..transport.session import POOL, SessionPool, client_timeout
from .base import ProviderError
from .http import Reply, encode_json, error_from_response, scrub

if TYPE_CHECKING:
    from ..config import ProviderSettings

__all__ = [
    "ErrorMapper",
    "UpstreamClient",
    "build_client",
    "credentials_in",
    "error_from_exception",
    "read_to_end",
]

_MAX_URLS = 256

ErrorMapper = Callable[[Reply, str], ProviderError]
"""Builds the error for a non-2xx answer (body already read)."""

READ_TO_END_SECONDS = 0.05
"""How long :func:`read_to_end` waits for what follows a stream's last event. An upstream
writes the end of its chunked body right after the last event, so it is there, or
moments away, unless the upstream misbehaves; then the connection is closed as before."""


async def read_to_end(stream: AsyncIterator[object]) -> None:
    """Read (and drop) what follows a stream's last event (``[DONE]``, ``message_stop``):
    usually only the chunked body's terminator. A response closed before its body ended
    takes its connection with it; read to the end, the connection goes back to the pool,
    and the next request does not pay for a new one (a TCP, and TLS, handshake)."""
    with contextlib.suppress(TimeoutError, ProviderError):
        async with asyncio.timeout(READ_TO_END_SECONDS):
            async for _ in stream:
                pass


def build_client(
    provider: str,
    config: ProviderSettings,
    base_url: str,
    on_error: ErrorMapper = error_from_response,
    auth: HeaderAuth = NO_AUTH,
) -> UpstreamClient:
    """A provider's client from its settings (``timeout``, extra ``headers``)."""
    return UpstreamClient(
        provider,
        base_url,
        timeout=config.timeout,
        headers=config.headers,
        on_error=on_error,
        auth=auth,
    )


def credentials_in(added: Mapping[str, str]) -> list[str]:
    """The credentials in auth headers, to scrub from error messages: each value and,
    for ``Scheme credential`` values (``Bearer ya29...``), the credential alone, which is
    what an upstream echoing it would quote."""
    found: list[str] = []
    for value in added.values():
        found.append(value)
        _, _, credential = value.partition(" ")
        if credential:
            found.append(credential)
    return found


def error_from_exception(exc: BaseException, provider: str) -> ProviderError:
    """Map a transport exception; the message names the provider, never a credential."""
    name = type(exc).__name__
    if isinstance(exc, BodyTooLargeError):
        return ProviderError(f"{provider} sent {exc}", kind="protocol", provider=provider)
    failure = classify(exc)
    if failure == "timeout":
        return ProviderError(f"{provider} timed out ({name})", kind="timeout", provider=provider)
    if failure == "connect":
        return ProviderError(
            f"{provider} connection failed ({name})", kind="connect", provider=provider
        )
    return ProviderError(f"{provider} request failed ({name})", kind="protocol", provider=provider)


class UpstreamClient:
    """One provider's view of the shared session: its base URL, default headers,
    timeout, error mapping and auth.

    ``auth`` (a :class:`~aiservice.transport.auth.HeaderAuth`) is asked for its headers
    once per request, with the request as it will be sent; a credential that cannot be
    obtained (a ``secret://`` reference that does not resolve) is an ``auth`` error, and
    the credentials it added are scrubbed from every error message of that request."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        on_error: ErrorMapper = error_from_response,
        pool: SessionPool = POOL,
        auth: HeaderAuth = NO_AUTH,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.on_error = on_error
        self.timeout = client_timeout(timeout)
        self.slow_timeout = client_timeout(timeout, read=False)
        self._headers = dict(headers or {})
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], URL] = {}
        self._pool = pool
        self.auth = auth
        self._open = True
        pool.acquire()

    def url(self, path: str, params: Mapping[str, str] | None = None) -> URL:
        """The absolute URL for ``path`` (relative to the base URL), built once."""
        key = (path, tuple(params.items()) if params else ())
        url = self._urls.get(key)
        if url is None:
            url = URL(self.base_url + path)
            if params:
                url = url.update_query(params)
            if len(self._urls) < _MAX_URLS:
                self._urls[key] = url
        return url

    def _fail(self, error: ProviderError, secrets: list[str]) -> ProviderError:
        return scrub(error, secrets)

    async def _prepare(
        self, method: str, url: URL, headers: Mapping[str, str], body: Any, secret: str | None
    ) -> tuple[dict[str, str], bytes | None, list[str]]:
        """Headers (defaults, the call's, trace context, auth), body bytes and the
        credentials to scrub from this request's errors."""
        merged = {**self._headers, **headers} if self._headers else dict(headers)
        inject_trace(merged)
        content = None
        if body is not None:
            merged["content-type"] = "application/json"
            content = encode_json(body)
        secrets = [secret] if secret else []
        if self.auth is NO_AUTH:
            return merged, content, secrets
        try:
            added = await self.auth.headers(Outgoing(method, url, merged, content))
        except SecretError as exc:
            raise ProviderError(str(exc), kind="auth", provider=self.provider) from exc
        for name, value in added.items():
            lowered = name.lower()
            for key in [k for k in merged if k.lower() == lowered]:
                del merged[key]
            merged[name] = value
        return merged, content, secrets + credentials_in(added)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        secret: str | None = None,
    ) -> Reply:
        """Any status comes back as a :class:`Reply`; transport failures are mapped."""
        reply, _ = await self._request(method, path, headers, body, params, secret)
        return reply

    async def _request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, str] | None,
        secret: str | None,
    ) -> tuple[Reply, list[str]]:
        url = self.url(path, params)
        merged, content, secrets = await self._prepare(method, url, headers, body, secret)
        session = self._pool.session()
        try:
            async with session.request(
                method,
                url,
                data=content,
                headers=merged,
                timeout=self.timeout,
                allow_redirects=False,
            ) as response:
                data = await read_body(response, limits.current().max_body_bytes)
                reply = Reply(response.status, response.headers, data, response.reason or "")
                return reply, secrets
        except TRANSPORT_ERRORS as exc:
            raise self._fail(error_from_exception(exc, self.provider), secrets) from exc

    async def json(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        body: Any = None,
        params: Mapping[str, str] | None = None,
        secret: str | None = None,
    ) -> Any:
        """The JSON answer; a non-2xx status or a body that is not JSON is an error."""
        reply, secrets = await self._request(method, path, headers, body, params, secret)
        if reply.status >= 400:
            raise self._fail(self.on_error(reply, self.provider), secrets)
        try:
            return reply.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.provider} returned invalid JSON", kind="protocol", provider=self.provider
            ) from exc

    async def lines(
        self,
        path: str,
        *,
        headers: Mapping[str, str],
        body: Any,
        params: Mapping[str, str] | None = None,
        secret: str | None = None,
        read_timeout: bool = True,
    ) -> AsyncGenerator[list[str], None]:
        """The lines of a streamed POST as they arrive, one list per network read (see
        :class:`~aiservice.transport.lines.LineSplitter`); errors before and during the
        stream are mapped. ``read_timeout=False``: no limit between
        chunks (downloads)."""
        url = self.url(path, params)
        merged, content, secrets = await self._prepare("POST", url, headers, body, secret)
        session = self._pool.session()
        try:
            async with session.post(
                url,
                data=content,
                headers=merged,
                timeout=self.timeout if read_timeout else self.slow_timeout,
                allow_redirects=False,
            ) as response:
                bounds = limits.current()
                if response.status >= 400:
                    data = await read_body(response, bounds.max_body_bytes)
                    reply = Reply(response.status, response.headers, data, response.reason or "")
                    raise self._fail(self.on_error(reply, self.provider), secrets)
                # The lines split here, in this loop: one async layer less per read.
                splitter = LineSplitter(bounds.max_line_bytes)
                reader = response.content
                # The first HTTP chunk alone (a token stream's first event): the rest of
                # an answer that came at once is not read and split before it goes on.
                first, _ = await reader.readchunk()
                batch = splitter.feed(first)
                if batch:
                    yield batch
                async for chunk in reader.iter_any():
                    batch = splitter.feed(chunk)
                    if batch:
                        yield batch
                batch = splitter.close()
                if batch:
                    yield batch
        except TRANSPORT_ERRORS as exc:
            raise self._fail(error_from_exception(exc, self.provider), secrets) from exc

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            await self._pool.release()
