"""The lines of a streamed answer as they arrive (Server-Sent Events, NDJSON)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from .errors import BodyTooLargeError

__all__ = ["LineSplitter", "iter_lines"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_KEY = "limits.max_upstream_line_bytes"


class LineSplitter:
    """The complete lines of each arriving chunk (:meth:`feed`), one list per chunk: a
    plain call per network read, for a reader that loops over the reads itself (no async
    layer of its own). Lines end at CR, LF or CRLF, the SSE rules; ``str.splitlines``
    would also split inside JSON strings holding U+2028.

    ``max_line``: a line longer than this bytes raises :class:`BodyTooLargeError` as soon
    as it is (an upstream sending one endless line holds at most that much here)."""

    __slots__ = ("_max", "_pending", "_size")

    def __init__(self, max_line: int | None = None) -> None:
        self._max = max_line
        self._pending: list[bytes] = []  # the unfinished line, in pieces: no copy per chunk
        self._size = 0

    def feed(self, chunk: bytes) -> list[str]:
        pending, max_line = self._pending, self._max
        parts: list[bytes] | None
        if not pending:
            data = chunk  # a token stream's usual case: lines end with their chunk
        elif chunk.find(b"\n") != -1 or chunk.find(b"\r") != -1 or pending[-1][-1:] == b"\r":
            data = b"".join((*pending, chunk))
        else:  # the unfinished line goes on
            pending.append(chunk)
            self._size += len(chunk)
            if max_line is not None and self._size > max_line:
                raise BodyTooLargeError("a streamed line", max_line, _KEY)
            return []
        # ``find``, not ``in``: ``bytes in bytes`` first tries the operand as an integer,
        # building (then dropping) a TypeError; twice the cost, on every read.
        if data.find(b"\r") != -1:
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
            self._pending, self._size = [rest], len(rest)
        elif pending:
            self._pending, self._size = [], 0
        if max_line is not None and len(data) > max_line:
            # Only a chunk this large can hold a line over the bound: the check costs
            # nothing on a token stream's small chunks.
            if parts is None:
                parts = _LINE_END.split(data[: len(data) - len(rest)])
            if self._size > max_line or any(len(part) > max_line for part in parts):
                raise BodyTooLargeError("a streamed line", max_line, _KEY)
        return lines

    def close(self) -> list[str]:
        """The last line, when the stream ended without a line end."""
        if not self._pending:
            return []
        last = b"".join(self._pending).rstrip(b"\r").decode("utf-8", "replace")
        self._pending, self._size = [], 0
        return [last]


async def iter_lines(
    chunks: AsyncIterator[bytes], max_line: int | None = None
) -> AsyncIterator[list[str]]:
    """The lines of each arriving chunk, one list per chunk with lines (see
    :class:`LineSplitter`; one async step per chunk, not per line: a token stream is
    hundreds of tiny chunks)."""
    splitter = LineSplitter(max_line)
    async for chunk in chunks:
        lines = splitter.feed(chunk)
        if lines:
            yield lines
    last = splitter.close()
    if last:
        yield last
