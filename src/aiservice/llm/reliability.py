"""Retries and the per-deployment circuit breaker (closed → open → half-open, with epochs).

Retries wrap one deployment; fallback to the next deployment is the gateway's job. The
loop is the transport's one (:mod:`aiservice.transport.retry`: exponential backoff with
full jitter, honouring ``Retry-After``), re-exported here for the gateway. Only
:attr:`ProviderError.retryable` errors are retried (connect errors, timeouts, 408, 429,
5xx). A ``Retry-After`` longer than :attr:`RetryPolicy.max_retry_after` is not waited for:
the deployment gives up at once so the gateway can fall back instead of holding the
request.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ..transport.retry import RetryPolicy, call_with_retries

__all__ = ["BreakerState", "Cooldowns", "RetryPolicy", "Ticket", "call_with_retries"]


BreakerState = Literal["closed", "open", "half_open"]


class Ticket(NamedTuple):
    """Permission for one request to use one deployment, stamped with the breaker's epoch
    at the time; ``probe`` marks the single half-open trial request."""

    key: str
    epoch: int
    probe: bool = False


@dataclass(slots=True)
class _State:
    failures: int = 0
    until: float = 0.0
    """When the open period ends (0: closed)."""
    epoch: int = 0
    probing: bool = False


@dataclass
class Cooldowns:
    """A circuit breaker per deployment.

    * **closed**: requests pass; ``threshold`` consecutive failures open it.
    * **open** for ``cooldown`` seconds: requests skip the deployment (fall back).
    * **half-open** after that: exactly one request (the probe) is let through while the
      others keep skipping; its success closes the breaker, its failure re-opens it for
      another ``cooldown``. A probe that decides nothing (cancelled, a client error) frees
      the slot for the next request.

    Every opening starts a new *epoch*. A request carries the epoch it started in (its
    :class:`Ticket`), and a result from an older epoch changes nothing: a slow request
    that began before the breaker opened cannot close it by succeeding late, nor extend
    the cooldown by failing late.
    """

    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)
    _epochs: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def state(self, key: str) -> BreakerState:
        s = self._states.get(key)
        if s is None or not s.until:
            return "closed"
        return "open" if self.clock() < s.until else "half_open"

    def remaining(self, key: str) -> float:
        s = self._states.get(key)
        return max(0.0, s.until - self.clock()) if s and s.until else 0.0

    def available(self, key: str) -> bool:
        """Whether :meth:`acquire` would let a request through now."""
        s = self._states.get(key)
        return s is None or not s.until or (self.clock() >= s.until and not s.probing)

    def acquire(self, key: str) -> Ticket | None:
        """A ticket to call the deployment, or ``None``: skip it (open, or probe in flight)."""
        s = self._states.get(key)
        if s is None:
            return Ticket(key, 0)
        if not s.until:
            return Ticket(key, s.epoch)
        if self.clock() < s.until or s.probing:
            return None
        s.probing = True
        return Ticket(key, s.epoch, probe=True)

    def current(self, ticket: Ticket) -> bool:
        """Whether the breaker is still where ``ticket`` found it (retrying makes sense)."""
        s = self._states.get(ticket.key)
        if s is None:
            return ticket.epoch == 0
        return s.epoch == ticket.epoch and (not s.until or (ticket.probe and s.probing))

    def _probe(self, s: _State | None, ticket: Ticket) -> bool:
        return s is not None and ticket.probe and s.probing and s.epoch == ticket.epoch

    def success(self, ticket: Ticket) -> None:
        s = self._states.get(ticket.key)
        if s is None:
            return
        if self._probe(s, ticket):
            s.failures, s.until, s.probing = 0, 0.0, False  # closed, same epoch
        elif s.epoch == ticket.epoch and not s.until:
            s.failures = 0
            if not s.epoch:  # never opened: nothing worth keeping
                del self._states[ticket.key]

    def failure(self, ticket: Ticket, *, threshold: int, cooldown: float) -> bool:
        """Count a failure; ``True`` if it opened (or re-opened) the breaker."""
        s = self._states.get(ticket.key)
        if self._probe(s, ticket):
            assert s is not None
            s.probing = False
            return self._open(s, cooldown)
        if s is None:
            if ticket.epoch != 0:
                return False
            s = self._states[ticket.key] = _State()
        if s.epoch != ticket.epoch or s.until:
            return False  # a late result from before the breaker last opened
        s.failures += 1
        return s.failures >= threshold and self._open(s, cooldown)

    def _open(self, s: _State, cooldown: float) -> bool:
        if cooldown <= 0:
            s.failures = 0
            return False
        s.until = self.clock() + cooldown
        s.epoch = next(self._epochs)
        return True

    def release(self, ticket: Ticket) -> None:
        """End of a request: a probe that decided nothing frees the half-open slot."""
        s = self._states.get(ticket.key)
        if self._probe(s, ticket):
            assert s is not None
            s.probing = False

    def reset(self, key: str) -> None:
        """Close the breaker now (an operator knows the upstream recovered)."""
        self._states.pop(key, None)

    def cooled(self) -> dict[str, float]:
        """Deployments open now, with the seconds left."""
        now = self.clock()
        return {k: s.until - now for k, s in self._states.items() if s.until > now}
