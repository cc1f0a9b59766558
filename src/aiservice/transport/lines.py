"""The lines of a streamed answer as they arrive (Server-Sent Events, NDJSON)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from .errors import BodyTooLargeError

__all__ = ["iter_lines"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_KEY = "limits.max_upstream_line_bytes"


async def iter_lines(
    chunks: AsyncIterator[bytes], max_line: int | None = None
) -> AsyncIterator[list[str]]:
    """The complete lines of each arriving chunk, one list per chunk (one async step per
    chunk, not per line: a token stream is hundreds of tiny chunks). Lines end at CR, LF
    or CRLF, the SSE rules; ``str.splitlines`` would also split inside JSON strings
    holding U+2028.

    ``max_line``: a line longer than this bytes raises :class:`BodyTooLargeError` as soon
    as it is (an upstream sending one endless line holds at most that much here)."""
    pending: list[bytes] = []  # the unfinished line, in pieces: no copy per chunk
    size = 0
    parts: list[bytes] | None
    async for chunk in chunks:
        if not pending:
            data = chunk  # a token stream's usual case: lines end with their chunk
        elif b"\n" in chunk or b"\r" in chunk or pending[-1][-1:] == b"\r":
            data = b"".join((*pending, chunk))
        else:  # the unfinished line goes on
            pending.append(chunk)
            size += len(chunk)
            if max_line is not None and size > max_line:
                raise BodyTooLargeError("a streamed line", max_line, _KEY)
            continue
        if b"\r" in data:
            held = data.endswith(b"\r")  # maybe the first half of CRLF: wait for more
            parts = _LINE_END.split(data[:-1] if held else data)
            rest = parts.pop() + (b"\r" if held else b"")
            lines = [part.decode("utf-8", "replace") for part in parts]
        else:
            # LF only (what upstreams send): the complete lines decoded at once and split
            # as text. A LF byte is never part of a multi-byte UTF-8 sequence, so this is
            # what decoding each line apart gives, invalid bytes included.
            end = data.rfind(b"\n")
            rest = data[end + 1 :]
            lines = data[:end].decode("utf-8", "replace").split("\n") if end >= 0 else []
            parts = None
        if rest:
            pending, size = [rest], len(rest)
        elif pending:
            pending, size = [], 0
        if max_line is not None and len(data) > max_line:
            # Only a chunk this large can hold a line over the bound: the check costs
            # nothing on a token stream's small chunks.
            if parts is None:
                parts = _LINE_END.split(data[: len(data) - len(rest)])
            if size > max_line or any(len(part) > max_line for part in parts):
                raise BodyTooLargeError("a streamed line", max_line, _KEY)
        if lines:
            yield lines
    if pending:
        yield [b"".join(pending).rstrip(b"\r").decode("utf-8", "replace")]
