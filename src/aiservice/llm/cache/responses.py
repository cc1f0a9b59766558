"""The LLM response cache with request coalescing, in one instance and across instances.

For a cacheable request (see :mod:`.policy`) the first caller for a key starts a *flight*:

1. read the entry from the shared backend → ``hit``;
2. else take the cross-instance lease (``add``) → call upstream → ``miss``, store the answer
   once the call completed successfully, release the lease;
3. else (another instance owns the lease) poll for its entry up to ``cache.wait_ms`` →
   ``coalesced``; if the lease is released without an entry, try to take it; on timeout
   fall through and call upstream.

Concurrent identical requests in this instance join the flight (``coalesced``) and, when
streaming, receive the chunks as they arrive. An entry keeps the form its call produced
(:mod:`.entries`): the chunk list of a stream, the completion of a non-stream call. A
request of the same kind gets it back unchanged, so a miss answers exactly as the hits that
replay its entry, with no conversion; a request of the other kind gets it converted
(:mod:`.chunks`). Errored or cancelled streams are never stored. Backend trouble never
fails a request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ...cache import batch
from ...cache.base import Consume, StateBackend
from ...cache.batch import Lease, Lookup
from ...cache.failopen import StateUnavailableError
from ...cache.ratelimit import Admission, PendingAdmission, deferred_charges
from ...observability import tracing
from .entries import Entry, entry_from, read_entry, store_entry
from .flight import Flight, FlightGroup
from .keys import lease_key
from .leases import Leases
from .policy import COALESCED, CachePolicy, CacheStatus, cache_requests, decide

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["CachedCompletion", "CachedStream", "Entry", "ResponseCache", "Upstream"]

Chunk = dict[str, Any]
LeaseOutcome = Literal["owner", "timeout", "answered", "none"]


class Upstream(NamedTuple):
    """How to call upstream for one request: both forms, the flight picks one.

    The leader's form is used (a streaming leader streams upstream, so its first token is
    not delayed); followers of the other kind read the answer converted.
    """

    complete: Callable[[], Awaitable[dict[str, Any]]]
    """Returns a ``chat.completion``."""
    stream: Callable[[], AsyncIterator[Chunk]]
    """Yields ``chat.completion.chunk`` dicts; raises before the first one on failure."""
    meta: Callable[[], dict[str, str]] = dict
    """Called after a successful call: stored with the entry, returned on hits."""


class CachedCompletion(NamedTuple):
    completion: Chunk
    status: CacheStatus
    upstream_called: bool
    """``True`` when this request's own upstream call produced the answer (charge usage)."""
    meta: dict[str, str]
    admission: Admission | None = None
    """The rate-limit admission run with the lookup, when one was given."""


class CachedStream(NamedTuple):
    chunks: AsyncIterator[Chunk]
    status: CacheStatus
    upstream_called: bool
    meta: dict[str, str]
    """Known at once for hits; for calls, filled in once the stream completed."""
    admission: Admission | None = None


class ResponseCache:
    def __init__(self, backend: StateBackend, settings: Settings) -> None:
        self.backend = backend
        self.mode = settings.cache.mode
        self.namespace = settings.cache.namespace
        self.default_ttl = float(settings.cache.ttl)
        self.lease_seconds = settings.cache.lease_ms / 1000
        self.wait_seconds = settings.cache.wait_ms / 1000
        self.instance = uuid.uuid4().hex.encode()
        self.flights: FlightGroup[CacheStatus] = FlightGroup()
        self.leases = Leases(
            backend, self.instance, self.lease_seconds, self.wait_seconds, self._lookup
        )

    def policy(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> CachePolicy:
        """Raises :class:`~aiservice.errors.InvalidRequestError` for a bad TTL header."""
        return decide(self.mode, request, headers)

    # -- public entry points -----------------------------------------------------------------

    async def complete(
        self,
        key: str,
        policy: CachePolicy,
        upstream: Upstream,
        admission: PendingAdmission | None = None,
    ) -> CachedCompletion:
        """``admission``: the request's rate-limit admission, run in the lookup's round
        trip (a refusal raises the 429 before anything else happens)."""
        if not policy.read:
            admitted = await _admit(admission)
            result = await self._complete_uncoalesced(key, policy, upstream)
            return result._replace(admission=admitted)
        found, admitted = await self._prefetch(key, policy, admission)
        flight, leader = self.flights.join(key, self._producer(key, policy, upstream, False, found))
        try:
            if not leader:
                await self._drop(key, found)
            completion = await flight.wait()
        finally:
            self.flights.leave(flight)
        status = self._reader_status(flight, leader)
        return CachedCompletion(
            completion, status, leader and status == "miss", flight.meta, admitted
        )

    async def stream(
        self,
        key: str,
        policy: CachePolicy,
        upstream: Upstream,
        admission: PendingAdmission | None = None,
    ) -> CachedStream:
        """Resolves once the status is known; iterate ``chunks`` to receive the stream."""
        if not policy.read:
            admitted = await _admit(admission)
            cache_requests("bypass").inc()
            meta: dict[str, str] = {}
            chunks = await _prefetch(self._stream_uncoalesced(key, policy, upstream, meta))
            return CachedStream(chunks, "bypass", True, meta, admitted)
        found, admitted = await self._prefetch(key, policy, admission)
        flight, leader = self.flights.join(key, self._producer(key, policy, upstream, True, found))
        try:
            if not leader:
                await self._drop(key, found)
            await flight.decided.wait()
            if flight.error is not None and not flight.chunks and flight.completion is None:
                raise flight.error
        except BaseException:
            self.flights.leave(flight)
            raise
        status = self._reader_status(flight, leader)
        called = leader and status == "miss"
        return CachedStream(self._read(flight), status, called, flight.meta, admitted)

    # -- the request's first round trip ------------------------------------------------------

    async def _prefetch(
        self, key: str, policy: CachePolicy, admission: PendingAdmission | None
    ) -> tuple[Lookup | None, Admission | None]:
        """Admission, entry and lease in one round trip (:func:`~.batch.lookup`); only the
        admission when a flight for ``key`` runs here already (this request will follow it).
        """
        if key in self.flights:
            return None, await _admit(admission)
        lease = Lease(lease_key(key), self.instance, self.lease_seconds) if policy.write else None
        admit = admission.items if admission is not None else ()
        try:
            with tracing.span("cache lookup") as span:
                found = await batch.lookup(self.backend, key, lease=lease, admit=admit)
                span.set("aiservice.cache.hit", found.value is not None)
        except StateUnavailableError as exc:
            cache_requests("error").inc()
            # As the fail-open calls answer: nothing cached, proceed as the lease owner.
            admitted = admission.failed(exc) if admission is not None else None
            return Lookup(None, None, lease is not None), admitted
        except Exception as exc:  # a raw backend (no fail-open wrapper) failing
            if admission is None:
                raise
            return None, admission.failed(exc)
        if admission is not None and found.admission is not None:
            return found, admission.settle(found.admission)  # a refusal raises the 429
        return found, None

    async def _drop(self, key: str, found: Lookup | None) -> None:
        """Another request of this instance started the flight meanwhile: give back the
        lease this request's lookup took (rare: both looked up before either joined)."""
        if found is not None and found.leased:
            await self.backend.delete(lease_key(key))

    async def aclose(self) -> None:
        await self.flights.aclose()

    # -- readers -----------------------------------------------------------------------------

    def _reader_status(self, flight: Flight[CacheStatus], leader: bool) -> CacheStatus:
        status: CacheStatus = flight.status or "miss"
        if not leader and status == "miss":
            status = "coalesced"
            COALESCED.labels("local").inc()
        cache_requests(status).inc()
        return status

    async def _read(self, flight: Flight[CacheStatus]) -> AsyncIterator[Chunk]:
        try:
            async for chunk in flight.read():
                yield chunk
        finally:
            self.flights.leave(flight)

    # -- no-cache requests: fresh upstream call, stored unless no-store ----------------------

    async def _complete_uncoalesced(
        self, key: str, policy: CachePolicy, upstream: Upstream
    ) -> CachedCompletion:
        cache_requests("bypass").inc()
        with deferred_charges() as charges:
            completion = await upstream.complete()
        meta = upstream.meta()
        entry = Entry(None, meta, completion) if policy.write else None
        await self._store(key, entry, policy, charge=charges)
        return CachedCompletion(completion, "bypass", True, meta)

    async def _stream_uncoalesced(
        self, key: str, policy: CachePolicy, upstream: Upstream, meta: dict[str, str]
    ) -> AsyncIterator[Chunk]:
        chunks: list[Chunk] = []
        async for chunk in upstream.stream():
            if not chunks:
                meta.update(upstream.meta())
            chunks.append(chunk)
            yield chunk
        # Reached only when the stream completed: errors and cancellation skip the store.
        meta.update(upstream.meta())
        if policy.write:
            await self._store(key, Entry(chunks, meta), policy)

    # -- the flight producer -----------------------------------------------------------------

    def _producer(
        self,
        key: str,
        policy: CachePolicy,
        upstream: Upstream,
        stream: bool,
        found: Lookup | None = None,
    ) -> Callable[[Flight[CacheStatus]], Awaitable[None]]:
        """``found``: the lookup the request made before starting the flight (else made here)."""

        async def produce(flight: Flight[CacheStatus]) -> None:
            if found is None:
                with tracing.span("cache lookup") as span:
                    cached = await self._lookup(key)
                    span.set("aiservice.cache.hit", cached is not None)
                leased = False
            else:
                cached = entry_from(found.value)
                leased = found.leased
            if cached is not None:
                _replay(flight, "hit", cached)
                return
            if leased:
                lease: LeaseOutcome = "owner"
            else:
                lease = await self._acquire_or_wait(key, flight) if policy.write else "none"
            if lease == "answered":
                return  # another instance's entry arrived and was pushed
            release = lease_key(key) if lease == "owner" else None
            try:
                # Usage charges (token limits, budgets) ride along with the store.
                with deferred_charges() as charges:
                    await self._call(upstream, stream, flight)
                # The readers have the whole answer now: the store does not delay them. A
                # request arriving meanwhile looks up afresh (and finds the lease held).
                flight.finish()
                self.flights.forget(key, flight)
                # The form it was produced in: the chunks of a stream, or the completion.
                entry = Entry(flight.chunks or None, flight.meta, flight.completion)
                with self.leases.storing(key):  # a request meanwhile waits for this entry
                    await self._store(
                        key,
                        entry if policy.write else None,
                        policy,
                        release=release,
                        charge=charges,
                    )
                release = None
            finally:
                if release is not None:  # never release a lease another instance holds
                    await self.backend.delete(release)

        return produce

    async def _call(self, upstream: Upstream, stream: bool, flight: Flight[CacheStatus]) -> None:
        if stream:
            # Decided at the first chunk, so an upstream failure before it reaches the
            # readers as an ordinary error (an HTTP status) rather than a broken stream.
            async for chunk in upstream.stream():
                if flight.status is None:
                    flight.meta.update(upstream.meta())
                    flight.decide("miss")
                flight.push(chunk)
        else:
            # Kept whole: non-stream readers get it as is, stream readers the chunks derived.
            # Decided once it arrived, so a failure reaches stream followers as an HTTP status.
            completion = await upstream.complete()
            flight.meta.update(upstream.meta())
            flight.answer(completion)
            flight.decide("miss")
            return
        flight.meta.update(upstream.meta())

    async def _acquire_or_wait(self, key: str, flight: Flight[CacheStatus]) -> LeaseOutcome:
        """``owner``: lease taken, call upstream; ``timeout``: waited enough, call upstream
        without it; ``answered``: the lease holder's entry arrived and was pushed."""
        outcome = await self.leases.acquire_or_wait(key)
        if outcome is True:
            return "owner"
        if outcome is False:
            return "timeout"
        COALESCED.labels("remote").inc()
        _replay(flight, "coalesced", outcome)
        return "answered"

    # -- backend I/O (the round trips are :mod:`.entries`') ---------------------------------

    async def _lookup(self, key: str) -> Entry | None:
        try:
            return await read_entry(self.backend, key)
        except StateUnavailableError:
            cache_requests("error").inc()
            return None

    async def _store(
        self,
        key: str,
        entry: Entry | None,
        policy: CachePolicy,
        *,
        release: str | None = None,
        charge: Sequence[Consume] = (),
    ) -> None:
        """Stored for the request's TTL (``x-aiservice-cache-ttl``), else ``cache.ttl``."""
        ttl = policy.ttl if policy.ttl is not None else self.default_ttl
        await store_entry(self.backend, key, entry, ttl, release=release, charge=charge)


def _replay(flight: Flight[CacheStatus], status: CacheStatus, entry: Entry) -> None:
    flight.meta.update(entry.meta)
    if entry.completion is not None:
        flight.answer(entry.completion)
    flight.decide(status)
    for chunk in entry.chunks or ():
        flight.push(chunk)


async def _admit(admission: PendingAdmission | None) -> Admission | None:
    return None if admission is None else await admission.run()


async def _prefetch(chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """Pull the first chunk now, so a failure before it raises here (an HTTP status)."""
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        first = None

    async def rest() -> AsyncIterator[Chunk]:
        if first is None:
            return
        try:
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    return rest()
