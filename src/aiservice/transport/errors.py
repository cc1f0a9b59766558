"""What a failed upstream exchange was, in three words, for every caller to map to its own
errors (a provider's ``ProviderError`` kind, a step's error kind)."""

from __future__ import annotations

from typing import Literal

import aiohttp

__all__ = ["TRANSPORT_ERRORS", "BodyTooLargeError", "Failure", "classify", "read_body"]

Failure = Literal["timeout", "connect", "protocol"]

TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
"""What an aiohttp request can raise besides cancellation (and the SSRF guard's refusal,
which its caller catches first)."""


class BodyTooLargeError(aiohttp.ClientError):
    """An upstream answer (or one line of a streamed one) over its bound
    (:mod:`.limits`): a ``protocol`` failure. Not worth retrying on the same upstream,
    whose next answer is likely as large."""

    def __init__(self, what: str, limit: int, key: str) -> None:
        super().__init__(f"{what} over the limit of {limit} bytes ({key})")
        self.limit = limit


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of ``response``, at most ``limit`` bytes (after decompression);
    raises :class:`BodyTooLargeError` as soon as it is over, without reading the rest."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLargeError("the answer", limit, "limits.max_upstream_body_bytes")
    if declared is not None and "content-encoding" not in response.headers:
        return await response.read()  # the declared length bounds it; aiohttp's fast path
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError("the answer", limit, "limits.max_upstream_body_bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def classify(exc: BaseException) -> Failure:
    """``timeout``: a phase ran out of time; ``connect``: refused, reset, closed mid-body,
    or an answer that is not HTTP at all (another deployment may well answer);
    ``protocol``: anything else (a URL aiohttp cannot send, a bad header)."""
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one too
        return "timeout"
    if isinstance(exc, aiohttp.InvalidURL | BodyTooLargeError):
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
