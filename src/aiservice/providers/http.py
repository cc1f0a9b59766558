"""Upstream HTTP helpers without I/O, shared by the HTTP providers: auth headers, JSON
encoding, error mapping for a read answer and the streaming parsers (Server-Sent Events,
newline-delimited JSON) over lines.

The I/O itself is :mod:`.upstream` over :mod:`aiservice.transport`; this module imports no
HTTP library.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from ..compact_json import dumps
from ..observability.redact import REDACTED, redact, register_secret
from ..transport.retry import parse_retry_after
from .base import ErrorKind, ProviderError

if TYPE_CHECKING:
    from ..secrets.base import SecretResolver
    from ..transport.auth import Outgoing

__all__ = [
    "KeyHeaders",
    "NotFinite",
    "Reply",
    "SSEParser",
    "ServerSentEvent",
    "bearer",
    "encode_json",
    "error_from_response",
    "iter_ndjson",
    "iter_sse",
    "loads",
    "loads_finite",
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


_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the class, not the call
)


def loads(text: str) -> Any:
    """``json.loads(text)``, minus its Python layers (type checks, two whitespace regex
    matches) on the usual input, a stream event's JSON with nothing around it: the C
    scanner directly. Anything else (leading whitespace, extra data, an error) goes
    through ``json.loads`` itself, so the result and the errors are the same."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return json.loads(text)
    return value


class NotFinite(Exception):
    """Raised by :func:`loads_finite` for ``NaN``, an infinity or a number that overflows
    to one."""


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf is nan; a finite number minus itself is 0
        raise NotFinite(text)
    return value


def _no_constant(text: str) -> Any:
    raise NotFinite(text)


# The same C scanner, with the float hook called only for numbers with a fraction or an
# exponent (integers cannot overflow to an infinity): nothing more for a token's event.
_scan_finite: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)  # type: ignore[arg-type]
)


def loads_finite(text: str) -> Any:
    """:func:`loads` for a stream event's JSON with nothing around it, every number in it
    finite. Raises :class:`NotFinite` for ``NaN``, an infinity or an overflowing number,
    and :class:`ValueError` for anything else :func:`loads` would not take this way
    (whitespace around, invalid JSON): the caller then uses :func:`loads`, which gives
    ``json.loads``' result or error."""
    try:
        value, end = _scan_finite(text, 0)
    except StopIteration as exc:
        raise ValueError("not a JSON value at the start") from exc
    if end != len(text):
        raise ValueError("more than one JSON value")
    return value


_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 19


def _holds_long_integer(data: bytes) -> bool:
    """19 digits in a row: maybe an integer orjson would turn into a float (beyond 64
    bits). ``find``, not ``in``: see :mod:`aiservice.transport.lines`."""
    return data.translate(_DIGITS).find(_LONG_INTEGER) != -1


def exact_loads(texts: list[str]) -> Callable[[str], Any]:
    """The fastest parser that gives :func:`loads_finite`'s value for each of ``texts``
    or raises :class:`ValueError` (or :class:`NotFinite`): ``orjson.loads``, about three
    times faster than the C scanner here, when no text holds 19 digits in a row. orjson
    turns an integer beyond 64 bits into a float; the scanner keeps it whole. Unlike
    :func:`loads_finite`, orjson takes whitespace around a value: callers that need
    text with nothing around it check its ends."""
    joined = texts[0] if len(texts) == 1 else "\n".join(texts)
    if _holds_long_integer(joined.encode()):
        return loads_finite
    return orjson.loads


def loads_bytes(data: bytes) -> Any:
    """``json.loads(data)``, by orjson when that gives the same value (no run of 19 digits:
    see :func:`exact_loads`): several times faster on a long array of floats, such as a
    cached embedding. Whatever orjson refuses (NaN, an infinity, a lone surrogate, UTF-16,
    invalid JSON) goes to ``json.loads``, which gives its value or its error."""
    if not _holds_long_integer(data):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


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
        return dumps(body)
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


class SSEParser:
    """Server-Sent Events from lines, per the WHATWG rules (multi-line data, comments,
    ids), fed one batch of lines (one network read) at a time: a plain loop over the
    batch, not an async step per line or per event.

    :meth:`feed` gives the batch's complete events; :meth:`data` only their ``data``
    (what the OpenAI wire needs: no event names, no objects per event); :meth:`close`
    the event left unfinished when the stream ended."""

    __slots__ = ("_data", "_event", "_id")

    def __init__(self) -> None:
        self._event = ""
        self._id: str | None = None
        self._data: list[str] = []

    def data(self, lines: list[str]) -> list[str]:
        if len(lines) > 2 and not self._data and not len(lines) & 1:
            # A burst's usual read: whole events of one ``data: `` line each, split in a
            # few passes over the text instead of a loop step per line.
            fields = "\n".join(lines[::2])  # lines hold no line end (LineSplitter)
            if (
                not any(lines[1::2])
                and fields.startswith("data: ")
                and fields.count("\ndata: ") == len(lines) // 2 - 1
            ):
                self._event = ""
                return fields[6:].split("\ndata: ")
        out: list[str] = []
        data = self._data
        for line in lines:
            if not line:  # the end of an event
                if data:
                    out.append(data[0] if len(data) == 1 else "\n".join(data))
                    data = self._data = []
                self._event = ""
            elif line.startswith("data: "):  # the usual field, spelled the usual way
                data.append(line[6:])
            else:
                self._field(line)
        return out

    def feed(self, lines: list[str]) -> list[ServerSentEvent]:
        out: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append(ServerSentEvent(self._event or "message", *self._take()))
                self._event = ""
            else:
                self._field(line)
        return out

    def close(self) -> ServerSentEvent | None:
        if not self._data:
            return None
        return ServerSentEvent(self._event or "message", *self._take())

    def _take(self) -> tuple[str, str | None]:
        data, self._data = self._data, []
        return "\n".join(data), self._id

    def _field(self, line: str) -> None:
        if line.startswith(":"):  # a comment
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value


async def iter_sse(batches: AsyncIterable[list[str]]) -> AsyncIterator[ServerSentEvent]:
    """The events of ``text/event-stream`` lines (in batches, as they arrived)."""
    parser = SSEParser()
    async for lines in batches:
        for event in parser.feed(lines):
            yield event
    last = parser.close()
    if last is not None:
        yield last


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
