"""The process's upstream body bounds (:mod:`aiservice.transport.limits`) on boto3's reads.

botocore reads a whole JSON answer (``Converse``, an error body) into memory inside its
HTTP session, and hands ``InvokeModel``'s body and ``ConverseStream``'s event stream over
as the raw urllib3 response: none of them bounded. :func:`bound_bodies` puts a session in
front of a client's own that makes every answer counted as it arrives:

* a whole answer (JSON, an error, ``InvokeModel``'s body): at most
  ``limits.max_upstream_body_bytes``, refused on a larger ``Content-Length`` before a byte
  is read;
* an event stream: each event at most ``limits.max_upstream_line_bytes`` (the bound of
  one streamed line elsewhere), refused on the length its prelude announces, before the
  event is buffered.

Going over is :class:`~aiservice.transport.errors.BodyTooLargeError`, the error of the
HTTP providers, mapped the same way (:func:`aiservice.providers.upstream.
error_from_exception`: a ``protocol`` failure, 502); the connection is closed, not read to
the end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ..transport import limits
from ..transport.errors import BodyTooLargeError

__all__ = ["bound_bodies"]

log = logging.getLogger("aiservice.providers")

EVENT_STREAM = "application/vnd.amazon.eventstream"
_BODY_KEY = "limits.max_upstream_body_bytes"
_EVENT_KEY = "limits.max_upstream_line_bytes"
_PIECE = 64 * 1024
_PRELUDE = 4
"""An event-stream message starts with its total length (big-endian, 4 bytes)."""


def bound_bodies(client: Any) -> None:
    """Make ``client`` (a boto3 client) read every answer within the process's bounds."""
    # botocore offers no option for its HTTP session: its endpoint's session is wrapped.
    # Should a botocore release move it, the client still works, unbounded, and says so.
    endpoint: Any = getattr(client, "_endpoint", None)
    session = getattr(endpoint, "http_session", None)
    if session is None:
        log.warning("bedrock: botocore has no endpoint HTTP session; answers are unbounded")
        return
    if not isinstance(session, _BoundedSession):
        endpoint.http_session = _BoundedSession(session)


class _BoundedSession:
    """botocore's HTTP session, whose answers are read through :class:`_BoundedBody` or
    :class:`_BoundedEvents`."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def send(self, request: Any) -> Any:
        preload = not request.stream_output
        request.stream_output = True  # botocore would read it all at once: read it here
        try:
            response = self._inner.send(request)
        finally:
            request.stream_output = not preload
        bounds = limits.current()
        content_type = response.headers.get("content-type") or ""
        if response.status_code < 300 and content_type.startswith(EVENT_STREAM):
            response.raw = _BoundedEvents(response.raw, bounds.max_line_bytes)
            return response
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > bounds.max_body_bytes:
            response.raw.close()
            raise BodyTooLargeError("the answer", bounds.max_body_bytes, _BODY_KEY)
        response.raw = _BoundedBody(response.raw, bounds.max_body_bytes)
        if preload:
            response.content  # noqa: B018 - read now, as botocore's session does
        return response


class _BoundedBody:
    """A urllib3 response read (``stream`` or ``read``) up to ``limit`` bytes in all."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self._read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._limit:
            self._raw.close()  # the rest is not read: the connection goes
            raise BodyTooLargeError("the answer", self._limit, _BODY_KEY)
        return data

    def stream(self, amt: int = _PIECE, decode_content: bool | None = None) -> Iterator[bytes]:
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            yield self._count(chunk)

    def read(self, amt: int | None = None, **kwargs: Any) -> bytes:
        if amt is not None:
            return self._count(self._raw.read(amt, **kwargs))
        # read() alone would take the whole body into memory before it could be counted.
        pieces = []
        while piece := self._count(self._raw.read(_PIECE, **kwargs)):
            pieces.append(piece)
        return b"".join(pieces)


class _BoundedEvents:
    """A urllib3 event-stream response whose messages may each be ``limit`` bytes long:
    the lengths the preludes announce are checked as the bytes pass."""

    def __init__(self, raw: Any, limit: int) -> None:
        self._raw = raw
        self._limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def stream(self, amt: int = _PIECE, decode_content: bool | None = None) -> Iterator[bytes]:
        left = 0  # bytes of the current message still to come
        prelude = b""  # the start of a length split across chunks
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            at = 0
            while at < len(chunk):
                if left:
                    step = min(left, len(chunk) - at)
                    left, at = left - step, at + step
                    continue
                begin = at if not prelude else 0  # where this message starts in the chunk
                taken = chunk[at : at + _PRELUDE - len(prelude)]
                prelude, at = prelude + taken, at + len(taken)
                if len(prelude) < _PRELUDE:
                    break
                total = int.from_bytes(prelude, "big")
                if total > self._limit:
                    if begin:  # the events before it are delivered first
                        yield chunk[:begin]
                    self._raw.close()
                    raise BodyTooLargeError("a streamed event", self._limit, _EVENT_KEY)
                left, prelude = max(total - _PRELUDE, 0), b""
            yield chunk
