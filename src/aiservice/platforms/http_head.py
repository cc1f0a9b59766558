"""Bounds on the request head for uvicorn's httptools parser: size (431) and time (408).

uvicorn bounds the head only with its pure-Python h11 parser
(``h11_max_incomplete_event_size``); the faster httptools parser that ``uvicorn[standard]``
picks keeps every header line a client sends. :class:`BoundedHttpToolsProtocol` counts the
request head as it arrives and answers ``431`` (the JSON error envelope) once it exceeds
the same setting, so one limit holds whichever parser runs; and it gives a head the same
deadline as a body (``limits.body_timeout_seconds``), answering ``408`` past it.

Pass ``http="aiservice.platforms.http_head:BoundedHttpToolsProtocol"`` to uvicorn (the
deadline is then the ``uvicorn.Config`` attribute :data:`~.serve.HEAD_TIMEOUT_ATTR` set by
:func:`~.serve.uvicorn_config`), or, where uvicorn builds each process's config itself
(``--workers``, ``--reload``), :func:`with_head_timeout`: the class with the deadline
bound, which travels to every worker with the rest of the config.
"""

from __future__ import annotations

import asyncio
import functools
import json
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..error_shapes import error_body_for
from ..errors import AIServiceError, HeaderTooLargeError, RequestTimeoutError
from .serve import HEAD_TIMEOUT_ATTR

__all__ = ["DEFAULT_HEAD_TIMEOUT", "PROTOCOL", "BoundedHttpToolsProtocol", "with_head_timeout"]

PROTOCOL = "aiservice.platforms.http_head:BoundedHttpToolsProtocol"

DEFAULT_HEAD_TIMEOUT = 30.0
"""Head deadline when neither :func:`with_head_timeout` nor ``uvicorn_config`` set one."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools protocol that bounds the request head in size and in time.

    Size: ``h11_max_incomplete_event_size``, counted on whole received chunks that fall
    inside one head (a header line that never ends counts too, which httptools'
    per-header callbacks would only report once it ended). The chunk in which a head
    begins is not counted, so a body byte is never taken for head: a head may overshoot
    the limit by one read before it is refused (431).

    Time: a connection must start a request, and a started head must be complete, within
    the head deadline; uvicorn arms no timer there (its keep-alive timer stops at the
    first byte), so a client trickling a head would hold the connection for ever. A late
    head gets 408, a connection that never sent a byte is closed.
    """

    def __init__(self, *args: Any, head_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit: int = self.config.h11_max_incomplete_event_size or 0
        if head_timeout is None:
            head_timeout = getattr(self.config, HEAD_TIMEOUT_ATTR, DEFAULT_HEAD_TIMEOUT)
        self._head_timeout: float = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._arm_head_timer()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:  # bytes already in flight after the refusal are dropped
            return
        whole_chunk_is_head = self._in_head
        super().data_received(data)
        if not (whole_chunk_is_head and self._in_head and self._head_limit):
            return
        self._head_bytes += len(data)
        if self._head_bytes > self._head_limit and not self.transport.is_closing():
            message = f"request head exceeds the limit of {self._head_limit} bytes"
            self._refuse(HeaderTooLargeError(message, param="server.max_header_bytes"))

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        if self._head_timeout > 0:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_late)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        if not self._in_head:  # connected, never sent a byte: nobody to answer
            self._refused = True
            self.transport.close()
            return
        message = f"the request head did not arrive within {self._head_timeout:g} s"
        self._refuse(
            RequestTimeoutError(message, code="head_timeout", param="limits.body_timeout_seconds")
        )

    def _target(self) -> dict[str, str]:
        """As much of the ASGI scope as the head gave before it was refused: the path of
        the request line, if it arrived (it picks the error body's shape)."""
        url: bytes = getattr(self, "url", b"") or b""
        root: str = getattr(self, "root_path", "") or ""
        path = url.split(b"?", 1)[0].decode("latin-1")
        return {"path": root + path, "root_path": root}

    def _refuse(self, error: AIServiceError) -> None:
        """Answer ``error`` in the envelope of the API the request line named (Anthropic's
        on ``/v1/messages``) and close: written to the transport directly, since the
        request never reaches the ASGI app."""
        self._refused = True
        self._disarm_head_timer()
        body = json.dumps(error_body_for(error, self._target())).encode()
        status = HTTPStatus(error.status_code)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()


def with_head_timeout(head_timeout: float) -> Any:
    """uvicorn's ``http`` option for the bounded protocol with ``head_timeout`` bound.

    ``uvicorn.run(..., workers=N)`` builds the ``Config`` itself and sends it to each worker
    by pickling: an attribute set after the fact cannot ride along, a ``functools.partial``
    of this module's class (pickled by reference, its float argument by value) does.
    """
    return functools.partial(BoundedHttpToolsProtocol, head_timeout=head_timeout)
