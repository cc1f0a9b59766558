"""Run an ASGI app's lifespan once per process, for hosts that run none by themselves.

Mangum with ``lifespan="auto"`` starts and stops the app on *every* invocation and
functions-framework never sends lifespan events, so both bridges use :class:`Lifespan`:
startup on first use, the app's lifespan task kept alive on the caller's (persistent)
event loop, shutdown only when the platform stops the instance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message

__all__ = ["Lifespan", "LifespanError"]

log = logging.getLogger("aiservice.platforms")


class LifespanError(RuntimeError):
    """The app reported ``lifespan.startup.failed`` (its message is kept)."""


class Lifespan:
    """Startup once, keep the state, shutdown on :meth:`shutdown`.

    Apps that do not implement the lifespan protocol (they raise or return on the
    ``lifespan`` scope) are served without one, as uvicorn's ``lifespan="auto"`` does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.started = False
        self.supported = True
        self._queue: asyncio.Queue[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        # Each resolves to None on success or the app's failure message: results, not
        # exceptions, so a failure nobody awaits (the loop closing) is not logged as lost.
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None

    async def startup(self) -> None:
        """Run startup if it has not completed yet; raise :class:`LifespanError` on failure."""
        if self.started:
            return
        if self._startup is not None:  # another task is starting it on this loop
            error = await asyncio.shield(self._startup)
            if error is not None:
                raise LifespanError(error)
            return
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._startup, self._shutdown = loop.create_future(), loop.create_future()
        self._queue.put_nowait({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        self._task = loop.create_task(self._run(scope))
        error = await asyncio.shield(self._startup)
        if error is not None:
            self._startup = None  # let the next call try again
            raise LifespanError(error)
        self.started = True

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Send ``lifespan.shutdown`` and wait (bounded) for the app to finish."""
        if not self.started or self._queue is None or self._shutdown is None:
            return
        self.started = False
        if self.supported:
            self._queue.put_nowait({"type": "lifespan.shutdown"})
            try:
                error = await asyncio.wait_for(asyncio.shield(self._shutdown), timeout)
            except TimeoutError:
                error = f"no answer within {timeout:g}s"
            if error is not None:
                log.warning("app shutdown did not complete cleanly: %s", error)
        if self._task is not None:
            await asyncio.wait([self._task], timeout=timeout)

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            # Before startup completed this means "no lifespan support" (a bare ASGI
            # callable rejecting the scope), which uvicorn's "auto" mode also tolerates.
            log.debug("app lifespan ended with %r", exc)
        finally:
            if self._startup is not None and not self._startup.done():
                self.supported = False  # serve without a lifespan
                self._startup.set_result(None)
            if self._shutdown is not None and not self._shutdown.done():
                self._shutdown.set_result(None)

    async def _receive(self) -> Message:
        assert self._queue is not None
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        future = self._startup if kind.startswith("lifespan.startup") else self._shutdown
        if future is None or future.done():
            return
        failed = kind.endswith(".failed")
        future.set_result((message.get("message") or kind) if failed else None)
