"""A chat stream after its first chunk: relayed to the caller, checked chunk by chunk,
and finished once, by accounting its usage, or by a failure counted against its
deployment and raised as the client's error.

:meth:`aiservice.llm.gateway.Gateway.stream` opens the stream (retries and fallback
apply until the first chunk) and hands the rest to :func:`relay_chunks` (providers that
yield chunk by chunk) or :func:`relay_batches` (a provider's ``stream_chat_wire``: one
list per network read, each chunk with the upstream's JSON text when it can be sent as
it came, see :meth:`~aiservice.llm.encode.ChunkEncoder.verbatim`). No fallback is
possible after the first chunk: a failure ends the stream with an
:class:`~aiservice.errors.AIServiceError`.

A stream that does not reach its end (its client left, or the upstream failed midway) is
still accounted, so per-key token budgets cannot be dodged by leaving before the usage
chunk: with the usage the upstream reported if any, else an estimate (the prompt at ~4
characters per token, one output token per chunk relayed: a token stream's granularity).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ..errors import AIServiceError
from ..providers.base import ChatChunk, ChatRequest, ProviderError
from ..providers.wire import estimate_tokens, message_text
from .deployments import Deployment
from .encode import ChunkEncoder, StreamChunk, StreamRun
from .errors import client_error
from .fallback import Fallback, close_iterator, encoding_problem, unusable_answer
from .reliability import Ticket

if TYPE_CHECKING:
    from ..security.apikeys import Principal
    from .accounting import Accountant

__all__ = [
    "Opened",
    "StreamEnd",
    "StreamResult",
    "WireBatch",
    "each",
    "encoded",
    "estimated_usage",
    "relay_batches",
    "relay_chunks",
    "verbatim",
]

T = TypeVar("T")

WireBatch = list[tuple[ChatChunk, str | None]]
"""What a provider's ``stream_chat_wire`` yields per network read: each chunk with the
JSON text it was parsed from when it is otherwise unchanged (see
:meth:`~aiservice.llm.encode.ChunkEncoder.verbatim`)."""


class StreamResult(NamedTuple):
    """``chunks`` one by one; or, when not ``None``, ``batches``: the same chunks in one
    list per network read (fewer async steps per chunk for a consumer that sends them
    on). A consumer iterates one of the two, never both."""

    deployment: Deployment
    chunks: AsyncIterator[ChatChunk]
    batches: AsyncIterator[list[ChatChunk]] | None = None


class Opened(NamedTuple):
    """A stream up to its first chunk; two fields, ``(source, first chunk)``, the shape
    tracing reads the response model from (``observability.otel.llm_attributes``)."""

    source: tuple[AsyncIterator[Any], WireBatch | None]  # rest None: no stream_chat_wire
    first: StreamChunk


def encoded(chunk: ChatChunk, encode: ChunkEncoder, d: Deployment) -> StreamChunk:
    """The chunk checked by serialising it once (see :mod:`aiservice.llm.encode`)."""
    out = encode(chunk)
    if out is None:
        problem = encoding_problem(chunk) or "sent a chunk that cannot be sent as JSON"
        raise ProviderError(f"{d.provider_name} {problem}", kind="protocol")
    return out


def verbatim(
    item: tuple[ChatChunk, str | None], encode: ChunkEncoder, d: Deployment
) -> StreamChunk:
    """A wire batch's chunk, sent as the upstream's text when that is sure to be right."""
    chunk, text = item
    if text is None:
        return encoded(chunk, encode, d)
    out = encode.verbatim(chunk, text)
    if out is None:
        return encoded(chunk, encode, d)  # names the problem
    return out


def _usage(chunk: ChatChunk) -> dict[str, int] | None:
    """The usage a chunk reports: OpenAI sends it on a chunk of its own, without choices."""
    return chunk["usage"] if not chunk.get("choices") and chunk.get("usage") else None


def estimated_usage(request: ChatRequest, chunks: int) -> dict[str, int]:
    """The usage of a stream cut short before its upstream reported any."""
    prompt = "\n".join(message_text(m) for m in request.get("messages", []))
    return {"prompt_tokens": estimate_tokens(prompt), "completion_tokens": chunks}


async def _next(iterator: AsyncIterator[T], idle: float | None, d: Deployment) -> T | None:
    """The next item, ``None`` at the end; with ``limits.requests.stream_idle_seconds``
    (``idle``) set, a trickle is not a stream: no item for that long is a timeout."""
    if idle is None:
        return await anext(iterator, None)
    try:
        async with asyncio.timeout(idle):
            return await anext(iterator, None)
    except TimeoutError as exc:
        message = f"{d.provider_name} sent no chunk for {idle:g}s"
        raise ProviderError(message, kind="timeout") from exc


async def each(batches: AsyncGenerator[list[ChatChunk], None]) -> AsyncIterator[ChatChunk]:
    """The chunks of ``batches`` one by one (a :class:`StreamRun`'s each with its wire)."""
    async with aclosing(batches):
        async for batch in batches:
            for chunk in batch.chunks() if type(batch) is StreamRun else batch:
                yield chunk


class StreamEnd(NamedTuple):
    """How one stream of ``model`` on ``deployment`` ends: its usage accounted and its
    success recorded, or its failure counted and raised as the client's error."""

    fallback: Fallback
    accountant: Accountant
    model: str
    deployment: Deployment
    ticket: Ticket
    principal: Principal | None
    started: float

    @contextmanager
    def failures(self) -> Iterator[None]:
        """A failure after the first chunk: counted against the deployment and raised as
        the client's :class:`AIServiceError` (no fallback is possible any more)."""
        d = self.deployment
        try:
            yield
        except ProviderError as exc:
            exc.provider = exc.provider or d.provider_name
            self.fallback.failed(d, self.ticket, exc)
            raise client_error(exc, d.provider_name) from exc
        except AIServiceError:
            raise
        except Exception as exc:
            error = unusable_answer(d, exc)
            self.fallback.failed(d, self.ticket, error)
            raise client_error(error, d.provider_name) from exc

    async def finished(self, usage: dict[str, int] | None) -> None:
        self.fallback.succeeded(self.deployment, self.started)
        await self.account(usage)

    async def account(self, usage: dict[str, int] | None) -> None:
        d = self.deployment
        await self.accountant.report(
            "chat", self.model, d.provider_name, d.model, usage, self.principal
        )


async def relay_chunks(
    end: StreamEnd,
    request: ChatRequest,
    iterator: AsyncIterator[ChatChunk],
    first: ChatChunk,
    encode: ChunkEncoder,
    idle: float | None,
) -> AsyncIterator[ChatChunk]:
    """The first chunk, then the rest one by one; any failure leaves as an
    :class:`AIServiceError`."""
    d = end.deployment
    usage = _usage(first)
    relayed = 1
    complete = False
    try:
        with end.failures():
            yield first
            if idle is None:
                # The per-chunk path of every stream: a plain ``async for``, the chunk
                # checked and encoded in one step (see :mod:`aiservice.llm.encode`).
                async for item in iterator:
                    chunk = encoded(item, encode, d)
                    usage = _usage(chunk) or usage
                    relayed += 1
                    yield chunk
            else:
                while (next_item := await _next(iterator, idle, d)) is not None:
                    chunk = encoded(next_item, encode, d)
                    usage = _usage(chunk) or usage
                    relayed += 1
                    yield chunk
        complete = True
    finally:
        await close_iterator(iterator)
        if not complete:
            await end.account(usage or estimated_usage(request, relayed))
    await end.finished(usage)


async def relay_batches(
    end: StreamEnd,
    request: ChatRequest,
    iterator: AsyncIterator[WireBatch],
    first: StreamChunk,
    rest: WireBatch,
    encode: ChunkEncoder,
    idle: float | None,
) -> AsyncGenerator[list[ChatChunk], None]:
    """:func:`relay_chunks` for a provider's ``stream_chat_wire``: the first chunk alone,
    then one list per network read. A chunk that cannot be sent fails the stream after
    the chunks before it."""
    d = end.deployment
    usage = _usage(first)
    relayed = 1
    complete = False
    try:
        with end.failures():
            yield [first]
            batch: WireBatch | None = rest
            while batch is not None:
                # Several chunks in one read (a burst): all at once, sent as they came.
                # One (a token stream's usual read) costs less on its own.
                run = encode.verbatim_run(batch) if len(batch) > 1 else None
                if run is not None:
                    relayed += len(run)
                    yield run
                    batch = await _next(iterator, idle, d)
                    continue
                out: list[ChatChunk] = []
                try:
                    for item in batch:
                        chunk = verbatim(item, encode, d)
                        # A chunk sent verbatim has choices; the usage chunk is encoded.
                        if item[1] is None:
                            usage = _usage(chunk) or usage
                        out.append(chunk)
                except Exception:
                    if out:  # what came before the bad chunk is sent, as one by one
                        relayed += len(out)
                        yield out
                    raise
                if out:
                    relayed += len(out)
                    yield out
                batch = await _next(iterator, idle, d)
        complete = True
    finally:
        await close_iterator(iterator)
        if not complete:
            await end.account(usage or estimated_usage(request, relayed))
    await end.finished(usage)
