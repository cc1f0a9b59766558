"""An upstream answer that never ends, and the check that its reader hung up in time.

Used by the tests of bounded upstream reads (``limits.max_upstream_body_bytes`` /
``_line_bytes``) over HTTP and through botocore: the upstream counts what it got out per
mode, and an answer is "cut off" when the reader closed the connection while that count
was still about the bound plus what the loopback socket buffers hold.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

PIECE = b"x" * 65536
SENT_BOUND = 32 * 1024 * 1024
"""What the upstream may get out before the reader hangs up: the bound plus the loopback
socket buffers (several MiB on Linux), far below an endless answer."""
GIVE_UP = 48 * 1024 * 1024
"""Where the upstream stops after all, so an unbounded reader fails instead of hanging."""


@dataclass
class Endless:
    """Per mode: bytes the upstream got out, and whether the reader hung up."""

    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    closed: dict[str, threading.Event] = field(default_factory=lambda: defaultdict(threading.Event))

    def reset(self) -> None:
        self.sent.clear()
        self.closed.clear()

    def body(self, mode: str, head: bytes) -> AsyncIterator[bytes]:
        async def stream() -> AsyncIterator[bytes]:
            try:
                yield head
                while self.sent[mode] < GIVE_UP:  # until the reader goes away
                    self.sent[mode] += len(PIECE)
                    yield PIECE
                    await asyncio.sleep(0)
            finally:
                self.closed[mode].set()

        return stream()

    def cut_off(self, mode: str) -> None:
        assert self.closed[mode].wait(5), f"the reader kept reading the {mode} answer"
        assert self.sent[mode] < SENT_BOUND, self.sent[mode]
