"""The HTTP providers' upstream client: aiohttp underneath, a tiny interface on top.

One ``aiohttp.ClientSession`` serves every provider of the process (one connection pool,
one DNS cache, one SSL context). It is created lazily on the event loop that first uses
it, because the platforms run the app on different loops (uvicorn's, the Lambda bridge's
kept loop, a test's), and it is closed when the last provider using it is closed. Another
loop (a later ``asyncio.run``, another thread) gets its own session; a dead loop's session
is dropped with its sockets closed.

Translation modules never see aiohttp: they call :meth:`UpstreamClient.request` /
:meth:`UpstreamClient.json` (status, headers, bytes) or :meth:`UpstreamClient.lines`
(the lines of a streamed answer, as they arrive). Every failure leaves as a
:class:`ProviderError`, mapped here and nowhere else, with the call's credential scrubbed.

Why aiohttp and not httpx: at a few dozen concurrent upstream calls httpx's pool
bookkeeping and per-request object graph were the largest cost of a gateway request
(see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from ..observability.context import inject_trace
from .base import ProviderError
from .http import Reply, encode_json, error_from_response, scrub

if TYPE_CHECKING:
    from ..config import ProviderSettings

__all__ = [
    "DNS_CACHE_SECONDS",
    "KEEPALIVE_SECONDS",
    "MAX_CONNECTIONS",
    "ErrorMapper",
    "SessionPool",
    "UpstreamClient",
    "build_client",
    "error_from_exception",
    "iter_lines",
]

MAX_CONNECTIONS = 200
KEEPALIVE_SECONDS = 30.0
DNS_CACHE_SECONDS = 300
_MAX_URLS = 256

ErrorMapper = Callable[[Reply, str], ProviderError]
"""Builds the error for a non-2xx answer (body already read)."""


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One context for the process: loading the CA bundle costs tens of ms each time."""
    try:
        import certifi  # the bundle httpx used: same trust as before the switch

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class SessionPool:
    """The process's session for each event loop that uses it (in practice one), all
    closed with the last user. A session lives on one loop: two loops in two threads
    each get their own rather than taking turns closing each other's."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self.users = 0
        self.created = 0

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is not None and not session.closed:
            return session
        for old, stale in list(self._sessions.items()):  # finished asyncio.run loops
            if old.is_closed() or stale.closed:
                del self._sessions[old]
                _abandon(stale)
        session = self._sessions[loop] = _new_session()
        self.created += 1
        return session

    def sessions(self) -> list[aiohttp.ClientSession]:
        return list(self._sessions.values())

    def acquire(self) -> None:
        self.users += 1

    async def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        sessions, self._sessions = self._sessions, {}
        running = asyncio.get_running_loop()
        for loop, session in sessions.items():
            if loop is running:
                await session.close()
            else:
                _abandon(session)


def _abandon(session: aiohttp.ClientSession) -> None:
    """Let go of a session whose loop is no longer the running one.

    A loop still running (another thread's) closes it itself. A stopped or closed loop
    cannot run the close any more, so the pooled sockets are closed here: otherwise every
    one of them leaks a file descriptor until garbage collection."""
    connector = session.connector
    loop = getattr(connector, "_loop", None)
    if loop is not None and loop.is_running() and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(session.close(), loop)
        return
    session.detach()
    if connector is not None:
        _close_sockets(connector)


def _close_sockets(connector: aiohttp.BaseConnector) -> None:
    # aiohttp keeps idle connections in ``_conns`` and busy ones in ``_acquired``; on a
    # dead loop its own close() returns early and leaves both open.
    conns: Any = getattr(connector, "_conns", {})
    acquired: Any = getattr(connector, "_acquired", set())
    protocols = [proto for queue in conns.values() for proto, _ in queue] + list(acquired)
    for proto in protocols:
        transport = proto.transport
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            transport._sock = None  # its __del__ would warn about a socket we closed
    conns.clear()  # an empty connector is dropped without a warning
    acquired.clear()


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
        use_dns_cache=True,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        ssl=_ssl_context(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Cookies from one tenant's upstream answer must never ride along on the next call.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        # Proxies are read once per client (see ``_env_proxy``), not on every request.
        trust_env=False,
        raise_for_status=False,
    )


POOL = SessionPool()


def build_client(
    provider: str,
    config: ProviderSettings,
    base_url: str,
    on_error: ErrorMapper = error_from_response,
) -> UpstreamClient:
    """A provider's client from its settings (``timeout``, extra ``headers``)."""
    return UpstreamClient(
        provider, base_url, timeout=config.timeout, headers=config.headers, on_error=on_error
    )


def _env_proxy(url: str) -> str | None:
    """The ``HTTP(S)_PROXY`` for ``url`` unless ``NO_PROXY`` exempts it (what httpx did)."""
    parsed = URL(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parsed.scheme or "")
    if not proxy or urllib.request.proxy_bypass(parsed.host or ""):
        return None
    return proxy


def _timeout(seconds: float, read: bool = True) -> aiohttp.ClientTimeout:
    """httpx semantics: ``seconds`` per phase (pool wait, each read), connect capped at 10 s."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=seconds,
        sock_connect=min(seconds, 10.0),
        sock_read=seconds if read else None,
    )


def error_from_exception(exc: BaseException, provider: str) -> ProviderError:
    """Map a transport exception; the message names the provider, never a credential."""
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return ProviderError(f"{provider} timed out ({name})", kind="timeout", provider=provider)
    # Refused, reset, closed mid-body, or an answer that is not HTTP at all: the
    # connection failed, and another deployment may well answer.
    if isinstance(
        exc,
        aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | OSError,
    ):
        return ProviderError(
            f"{provider} connection failed ({name})", kind="connect", provider=provider
        )
    return ProviderError(f"{provider} request failed ({name})", kind="protocol", provider=provider)


_TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
_LINE_END = re.compile(rb"\r\n|\r|\n")


async def iter_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[str]]:
    """The complete lines of each arriving chunk, one list per chunk (one async step per
    chunk, not per line: a token stream is hundreds of tiny chunks). Lines end at CR, LF
    or CRLF, the SSE rules; ``str.splitlines`` would also split inside JSON strings
    holding U+2028."""
    pending = b""
    async for chunk in chunks:
        data = pending + chunk if pending else chunk
        if b"\r" in data:
            held = data.endswith(b"\r")  # maybe the first half of CRLF: wait for more
            parts = _LINE_END.split(data[:-1] if held else data)
            pending = parts.pop() + (b"\r" if held else b"")
        else:
            parts = data.split(b"\n")
            pending = parts.pop()
        if parts:
            yield [part.decode("utf-8", "replace") for part in parts]
    if pending:
        yield [pending.rstrip(b"\r").decode("utf-8", "replace")]


class UpstreamClient:
    """One provider's view of the shared session: its base URL, default headers,
    timeout and error mapping."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        on_error: ErrorMapper = error_from_response,
        pool: SessionPool = POOL,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.on_error = on_error
        self.timeout = _timeout(timeout)
        self.slow_timeout = _timeout(timeout, read=False)
        self._headers = dict(headers or {})
        self._proxy = _env_proxy(self.base_url)
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], URL] = {}
        self._pool = pool
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

    def _fail(self, error: ProviderError, secret: str | None) -> ProviderError:
        return scrub(error, [secret] if secret else [])

    def _prepare(
        self, headers: Mapping[str, str], body: Any
    ) -> tuple[dict[str, str], bytes | None]:
        merged = {**self._headers, **headers} if self._headers else dict(headers)
        inject_trace(merged)
        if body is None:
            return merged, None
        merged["content-type"] = "application/json"
        return merged, encode_json(body)

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
        merged, content = self._prepare(headers, body)
        session = self._pool.session()
        try:
            async with session.request(
                method,
                self.url(path, params),
                data=content,
                headers=merged,
                timeout=self.timeout,
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                data = await response.read()
                return Reply(response.status, response.headers, data, response.reason or "")
        except _TRANSPORT_ERRORS as exc:
            raise self._fail(error_from_exception(exc, self.provider), secret) from exc

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
        reply = await self.request(
            method, path, headers=headers, body=body, params=params, secret=secret
        )
        if reply.status >= 400:
            raise self._fail(self.on_error(reply, self.provider), secret)
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
        """The lines of a streamed POST as they arrive (see :func:`iter_lines`); errors
        before and during the stream are mapped. ``read_timeout=False``: no limit between
        chunks (downloads)."""
        merged, content = self._prepare(headers, body)
        session = self._pool.session()
        try:
            async with session.post(
                self.url(path, params),
                data=content,
                headers=merged,
                timeout=self.timeout if read_timeout else self.slow_timeout,
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                if response.status >= 400:
                    data = await response.read()
                    reply = Reply(response.status, response.headers, data, response.reason or "")
                    raise self._fail(self.on_error(reply, self.provider), secret)
                async for batch in iter_lines(response.content.iter_any()):
                    yield batch
        except _TRANSPORT_ERRORS as exc:
            raise self._fail(error_from_exception(exc, self.provider), secret) from exc

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            await self._pool.release()
