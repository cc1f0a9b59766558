"""Running a coroutine's first step at once, and the rest of it later if it must wait.

Receiving a request body the server has already buffered (the common small request)
completes without suspending, yet awaited under a timeout it still pays for a timer set
and cancelled around it (:mod:`.body_limit`). :func:`first_step` runs the coroutine up to
its first suspension now; only a coroutine that did suspend is finished with
:class:`Resumed`, under whatever the caller wraps around that (the timeout).
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Resumed", "first_step"]

T = TypeVar("T")


class _Pending:
    """A coroutine suspended at its first step, with the value it suspended with."""

    __slots__ = ("coro", "value")

    def __init__(self, coro: Coroutine[Any, Any, Any], value: Any) -> None:
        self.coro, self.value = coro, value


def first_step(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """Run ``coro`` until it returns or first suspends: ``(True, result)`` or ``(False,
    pending)``; pass ``pending`` to :class:`Resumed` to finish it. An exception it raises
    propagates, as from ``await coro``."""
    try:
        value = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, _Pending(coro, value)


class Resumed(Generic[T]):
    """``await Resumed(pending)`` finishes a coroutine :func:`first_step` left suspended:
    each value it yields goes to the awaiting task, each result or exception the task
    delivers goes back to it (what ``await coro`` would have done from the start, so
    cancellation and timeouts reach it as usual)."""

    __slots__ = ("_pending",)

    def __init__(self, pending: Any) -> None:
        self._pending: _Pending = pending

    def __await__(self) -> Generator[Any, Any, T]:
        coro, value = self._pending.coro, self._pending.value
        while True:
            try:
                sent = yield value
            except BaseException as exc:  # cancellation, close(): the coroutine decides
                try:
                    value = coro.throw(exc)
                except StopIteration as done:
                    result: T = done.value
                    return result
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as done:
                    result = done.value
                    return result
