"""A bound on the request head for uvicorn's httptools parser: 431 past ``server.max_header_bytes``.

uvicorn bounds the head only with its pure-Python h11 parser
(``h11_max_incomplete_event_size``); the faster httptools parser that ``uvicorn[standard]``
picks keeps every header line a client sends. :class:`BoundedHttpToolsProtocol` counts the
request line and headers as they are parsed and answers ``431`` (the JSON error envelope)
once they exceed the same setting, so one limit holds whichever parser runs.

Pass ``http="aiservice.platforms.http_head:BoundedHttpToolsProtocol"`` to uvicorn (a
dotted path, so ``--workers`` processes import it themselves).
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["PROTOCOL", "BoundedHttpToolsProtocol"]

PROTOCOL = "aiservice.platforms.http_head:BoundedHttpToolsProtocol"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools protocol that refuses a request head over ``h11_max_incomplete_event_size``.

    Counted on whole received chunks that fall inside one head (a header line that never
    ends counts too, which httptools' per-header callbacks would only report once it
    ended). The chunk in which a head begins is not counted, so a body byte is never
    taken for head: a head may overshoot the limit by one read before it is refused.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit: int = self.config.h11_max_incomplete_event_size or 0
        self._in_head = False
        self._head_bytes = 0
        self._refused = False

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
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
            self._refused = True
            self._send_431()

    def _send_431(self) -> None:
        message = f"request head exceeds the limit of {self._head_limit} bytes"
        body = json.dumps(
            {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "code": "header_too_large",
                    "param": "server.max_header_bytes",
                }
            }
        ).encode()
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()
