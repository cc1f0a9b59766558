"""How much of an upstream answer is read: a hostile or broken upstream must not be able to
fill the process's memory with one answer.

Two bounds, process-wide like the session pool they apply to (set from
``limits.max_upstream_body_bytes`` / ``limits.max_upstream_line_bytes`` when the app
starts, see :func:`configure`):

* **a whole answer** read at once (a provider's JSON answer or error body, a step's or a
  webhook's answer): counted as it arrives, after decompression, so a small compressed
  body cannot inflate past it either;
* **one line of a streamed answer** (an SSE or NDJSON line): a stream may run as long as
  its deadline and timeouts allow, but no single event may grow without end.

Going over either is :class:`~aiservice.transport.errors.BodyTooLargeError`, which the
transport classifies as a ``protocol`` failure. No HTTP library is imported here.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_LINE_BYTES", "BodyLimits", "configure", "current"]

MiB = 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 32 * MiB
DEFAULT_MAX_LINE_BYTES = 16 * MiB
"""One streamed event; generous because some carry a whole answer (the Responses API's
``response.completed``, an inline image)."""


class BodyLimits(NamedTuple):
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


_current = BodyLimits()


def configure(max_body_bytes: int, max_line_bytes: int) -> BodyLimits:
    """Set the process's bounds; returns the previous ones (to restore)."""
    global _current
    previous, _current = _current, BodyLimits(max_body_bytes, max_line_bytes)
    return previous


def current() -> BodyLimits:
    return _current
