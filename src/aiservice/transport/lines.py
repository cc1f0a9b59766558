"""The lines of a streamed answer as they arrive (Server-Sent Events, NDJSON)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

__all__ = ["iter_lines"]

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
