"""The contract every shared-state backend passes (subclass :class:`StateBackendContract`).

A subclass provides two fixtures: ``make_backend(namespace)`` returning a fresh backend
whose keys live under a namespace unique to the test (it cleans up afterwards), and
``advance``: an async callable that lets ``seconds`` of backend time pass (a fake clock
where the backend accepts one, a real sleep otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aiservice.cache.base import Consume, StateBackend

Advance = Callable[[float], Awaitable[None]]
MakeBackend = Callable[[str], StateBackend]


class StateBackendContract:
    """Behaviour pinned for memory, Redis and DynamoDB alike."""

    ttl = 1.0  # short TTL used by expiry tests; subclasses with real clocks keep it small

    @pytest.fixture
    def backend(self, make_backend: MakeBackend) -> StateBackend:
        return make_backend("a")

    async def test_namespaces_do_not_see_each_other(self, make_backend: MakeBackend) -> None:
        first, second = make_backend("one"), make_backend("two")
        await first.set("shared-name", b"1")
        assert await second.get("shared-name") is None
        assert await second.add("shared-name", b"2", 60) is True
        assert await first.get("shared-name") == b"1"

    async def test_get_of_a_missing_key_is_none(self, backend: StateBackend) -> None:
        assert await backend.get("missing") is None

    async def test_set_then_get_round_trips_binary_values(self, backend: StateBackend) -> None:
        value = bytes(range(256)) * 4
        await backend.set("k", value)
        assert await backend.get("k") == value

    async def test_set_overwrites(self, backend: StateBackend) -> None:
        await backend.set("k", b"one")
        await backend.set("k", b"two")
        assert await backend.get("k") == b"two"

    async def test_set_with_ttl_expires(self, backend: StateBackend, advance: Advance) -> None:
        await backend.set("short", b"x", ttl=self.ttl)
        await backend.set("long", b"y", ttl=3600)
        assert await backend.get("short") == b"x"
        await advance(self.ttl * 1.5 + 0.2)
        assert await backend.get("short") is None
        assert await backend.get("long") == b"y"

    async def test_add_stores_only_when_absent(self, backend: StateBackend) -> None:
        assert await backend.add("lease", b"a", ttl=60) is True
        assert await backend.add("lease", b"b", ttl=60) is False
        assert await backend.get("lease") == b"a"

    async def test_add_succeeds_again_after_expiry(
        self, backend: StateBackend, advance: Advance
    ) -> None:
        assert await backend.add("lease", b"a", ttl=self.ttl) is True
        await advance(self.ttl * 1.5 + 0.2)
        assert await backend.add("lease", b"b", ttl=60) is True
        assert await backend.get("lease") == b"b"

    async def test_concurrent_adds_have_exactly_one_winner(self, backend: StateBackend) -> None:
        results = await asyncio.gather(*(backend.add("race", b"%d" % i, 60) for i in range(20)))
        assert results.count(True) == 1

    async def test_compare_and_set_replaces_only_the_expected_value(
        self, backend: StateBackend
    ) -> None:
        await backend.set("lease", b"mine", ttl=60)
        assert await backend.compare_and_set("lease", b"theirs", b"x", 60) is False
        assert await backend.get("lease") == b"mine"
        assert await backend.compare_and_set("lease", b"mine", b"next", 60) is True
        assert await backend.get("lease") == b"next"

    async def test_compare_and_set_of_a_missing_key_stores_nothing(
        self, backend: StateBackend
    ) -> None:
        assert await backend.compare_and_set("absent", b"", b"x", 60) is False
        assert await backend.compare_and_set("absent", b"mine", b"x", 60) is False
        assert await backend.get("absent") is None

    async def test_compare_and_set_does_not_match_an_expired_value(
        self, backend: StateBackend, advance: Advance
    ) -> None:
        await backend.add("lease", b"mine", ttl=self.ttl)
        await advance(self.ttl * 1.5 + 0.2)
        assert await backend.compare_and_set("lease", b"mine", b"mine", 60) is False
        assert await backend.get("lease") is None

    async def test_compare_and_set_rearms_the_ttl(
        self, backend: StateBackend, advance: Advance
    ) -> None:
        await backend.add("long", b"mine", ttl=self.ttl)
        await backend.add("short", b"mine", ttl=3600)
        assert await backend.compare_and_set("long", b"mine", b"mine", 3600) is True
        assert await backend.compare_and_set("short", b"mine", b"mine", self.ttl) is True
        await advance(self.ttl * 1.5 + 0.2)
        assert await backend.get("long") == b"mine"  # would have expired without the re-arm
        assert await backend.get("short") is None

    async def test_concurrent_compare_and_set_has_exactly_one_winner(
        self, backend: StateBackend
    ) -> None:
        await backend.set("lease", b"orphan", ttl=60)
        results = await asyncio.gather(
            *(backend.compare_and_set("lease", b"orphan", b"%d" % i, 60) for i in range(20))
        )
        assert results.count(True) == 1
        assert await backend.get("lease") == b"%d" % results.index(True)

    async def test_delete_removes_and_tolerates_missing(self, backend: StateBackend) -> None:
        await backend.set("k", b"v")
        await backend.delete("k")
        await backend.delete("never-set")
        assert await backend.get("k") is None
        assert await backend.add("k", b"w", 60) is True

    async def test_incr_creates_and_accumulates(self, backend: StateBackend) -> None:
        assert await backend.incr("c", 3, 60) == 3
        assert await backend.incr("c", 4, 60) == 7

    async def test_incr_window_does_not_slide_and_restarts_after_ttl(
        self, backend: StateBackend, advance: Advance
    ) -> None:
        assert await backend.incr("c", 1, self.ttl) == 1
        await advance(self.ttl * 0.5)
        assert await backend.incr("c", 1, self.ttl) == 2  # must not extend the deadline
        await advance(self.ttl * 1.0 + 0.2)
        assert await backend.incr("c", 5, self.ttl) == 5

    async def test_concurrent_incr_loses_no_update(self, backend: StateBackend) -> None:
        await asyncio.gather(*(backend.incr("hits", 1, 60) for _ in range(30)))
        assert await backend.incr("hits", 0, 60) == 30

    async def test_consume_charges_every_counter_when_allowed(self, backend: StateBackend) -> None:
        result = await backend.consume(
            [Consume("a", 1, 60, limit=5), Consume("b", 10, 60), Consume("t", 0, 60, 100, 1)]
        )
        assert result.allowed
        assert result.values == (1, 10, 0)
        assert await backend.incr("a", 0, 60) == 1
        assert await backend.incr("b", 0, 60) == 10

    async def test_consume_rejects_atomically_without_charging(self, backend: StateBackend) -> None:
        await backend.incr("full", 2, 60)
        result = await backend.consume([Consume("other", 1, 60), Consume("full", 1, 60, limit=2)])
        assert not result.allowed
        assert result.values == (0, 2)
        assert await backend.incr("other", 0, 60) == 0  # nothing charged

    async def test_consume_need_checks_headroom_without_charging(
        self, backend: StateBackend
    ) -> None:
        # A tokens-per-minute pre-check: allowed while one token is left, charges nothing.
        await backend.incr("tpm", 99, 60)
        assert (await backend.consume([Consume("tpm", 0, 60, limit=100, need=1)])).allowed
        await backend.incr("tpm", 1, 60)
        assert not (await backend.consume([Consume("tpm", 0, 60, limit=100, need=1)])).allowed

    async def test_concurrent_consume_never_exceeds_the_limit(self, backend: StateBackend) -> None:
        results = await asyncio.gather(
            *(backend.consume([Consume("rpm", 1, 60, limit=10)]) for _ in range(25))
        )
        assert sum(r.allowed for r in results) == 10
        assert await backend.incr("rpm", 0, 60) == 10

    async def test_consume_counter_restarts_after_its_window(
        self, backend: StateBackend, advance: Advance
    ) -> None:
        assert (await backend.consume([Consume("w", 2, self.ttl, limit=2)])).allowed
        assert not (await backend.consume([Consume("w", 1, self.ttl, limit=2)])).allowed
        await advance(self.ttl * 1.5 + 0.2)
        result = await backend.consume([Consume("w", 1, self.ttl, limit=2)])
        assert result.allowed and result.values == (1,)

    async def test_ping_succeeds_when_reachable(self, backend: StateBackend) -> None:
        await backend.ping()
