"""In-process singleflight for chunk streams: one producer, any number of readers.

A flight's answer is either the chunks pushed one by one (a streamed call) or one whole
``chat.completion`` (a non-stream call, :meth:`Flight.answer`); readers get it in the form
they want (:meth:`Flight.read`, :meth:`Flight.wait`), converted only when it differs.

The producer runs as its own task, so the first requester disconnecting does not cancel
the upstream call others are reading. Readers register; when the last one leaves before
the flight finished, the producer is cancelled (nobody wants the answer, and a cancelled
stream is never stored). Readers joining late first get every chunk produced so far, then
the rest as it arrives, so stream followers see the same chunk boundaries as the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from .chunks import chunks_to_completion, completion_to_chunks

__all__ = ["Flight", "FlightGroup"]

Chunk = dict[str, Any]
S = TypeVar("S")

Producer = Callable[["Flight[S]"], Awaitable[None]]


class Flight(Generic[S]):
    """Chunks produced so far (or the whole completion), completion state and a
    producer-defined ``status``."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self.completion: Chunk | None = None  # the answer, when produced whole (no chunks)
        self._derived: list[Chunk] | None = None
        self.meta: dict[str, str] = {}  # stored with the entry (e.g. the answering deployment)
        self.status: S | None = None
        self.error: BaseException | None = None
        self.done = False
        self.decided = asyncio.Event()  # set once ``status`` is known
        self._changed = asyncio.Event()
        self._readers = 0
        self._task: asyncio.Task[None] | None = None

    # -- producer side ---------------------------------------------------------------------

    def decide(self, status: S) -> None:
        self.status = status
        self.decided.set()

    def push(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self._wake()

    def answer(self, completion: Chunk) -> None:
        """The whole answer at once, instead of :meth:`push`-ing chunks."""
        self.completion = completion
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done = True
        self.decided.set()
        self._wake()

    def _wake(self) -> None:
        # Swap before setting: readers waiting now wake up, later readers wait afresh.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- reader side -----------------------------------------------------------------------

    async def read(self) -> AsyncIterator[Chunk]:
        """Every chunk, from the first; raises the producer's error at the point it failed.

        A whole completion is read as the chunks derived from it (once per flight)."""
        position = 0
        while True:
            chunks = self._stream_form()
            while position < len(chunks):
                yield chunks[position]
                position += 1
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            await self._changed.wait()

    async def wait(self) -> Chunk:
        """The ``chat.completion`` once the flight finished (the produced one as is, else
        merged from the chunks, afresh for each caller); raises the producer's error."""
        while not self.done:
            await self._changed.wait()
        if self.error is not None:
            raise self.error
        if self.completion is not None:
            return self.completion
        return chunks_to_completion(self.chunks)

    def _stream_form(self) -> list[Chunk]:
        if self.completion is None:
            return self.chunks
        if self._derived is None:
            self._derived = completion_to_chunks(self.completion)
        return self._derived


class FlightGroup(Generic[S]):
    """Flights by key; the first caller of :meth:`join` for a key starts the producer."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight[S]] = {}
        self._detached: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def forget(self, key: str, flight: Flight[S]) -> None:
        """Let later requests for ``key`` start afresh while ``flight``'s producer finishes
        its own work (storing the answer); :meth:`aclose` still waits for it."""
        if self._flights.get(key) is flight:
            del self._flights[key]
            if flight._task is not None:
                self._detached.add(flight._task)
                flight._task.add_done_callback(self._detached.discard)

    def join(self, key: str, producer: Producer[S]) -> tuple[Flight[S], bool]:
        """The flight for ``key`` and whether this call started it. Call :meth:`leave` after."""
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            flight = Flight[S]()
            self._flights[key] = flight
            flight._task = asyncio.create_task(self._run(key, flight, producer))
        flight._readers += 1
        return flight, leader

    def leave(self, flight: Flight[S]) -> None:
        flight._readers -= 1
        if flight._readers <= 0 and not flight.done and flight._task is not None:
            flight._task.cancel()

    async def _run(self, key: str, flight: Flight[S], producer: Producer[S]) -> None:
        try:
            await producer(flight)
        except asyncio.CancelledError as exc:
            flight.finish(exc)
        except Exception as exc:  # handed to every reader, who re-raises it
            flight.finish(exc)
        else:
            flight.finish()
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]

    async def settled(self) -> None:
        """Wait for the producers :meth:`forget` let go of (their answers stored)."""
        while self._detached:
            await asyncio.wait(list(self._detached))

    async def aclose(self) -> None:
        """Cancel every running producer (app shutdown)."""
        tasks = [f._task for f in self._flights.values() if f._task is not None]
        tasks += list(self._detached)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
