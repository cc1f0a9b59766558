"""What a failed upstream exchange was, in three words, for every caller to map to its own
errors (a provider's ``ProviderError`` kind, a step's error kind)."""

from __future__ import annotations

from typing import Literal

import aiohttp

__all__ = ["TRANSPORT_ERRORS", "Failure", "classify"]

Failure = Literal["timeout", "connect", "protocol"]

TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
"""What an aiohttp request can raise besides cancellation (and the SSRF guard's refusal,
which its caller catches first)."""


def classify(exc: BaseException) -> Failure:
    """``timeout``: a phase ran out of time; ``connect``: refused, reset, closed mid-body,
    or an answer that is not HTTP at all (another deployment may well answer);
    ``protocol``: anything else (a URL aiohttp cannot send, a bad header)."""
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return "timeout"
    if isinstance(exc, aiohttp.InvalidURL):
        return "protocol"
    if isinstance(
        exc,
        aiohttp.ClientConnectionError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError
        | OSError,
    ):
        return "connect"
    return "protocol"
