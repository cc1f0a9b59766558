"""Run an ASGI app's lifespan once per process, for hosts that run none by themselves.

Mangum with ``lifespan="auto"`` starts and stops the app on *every* invocation and
functions-framework never sends lifespan events, so both bridges use :class:`Lifespan`:
startup on first use, the app's lifespan task kept alive on the caller's (persistent)
event loop, shutdown only when the platform stops the instance.

Modes (Mangum's and uvicorn's names):

* ``"auto"`` - an app that does not speak the protocol (it returns, raises or sends before
  asking for ``lifespan.startup``) is served without a lifespan; an exception in its
  startup code is logged at ERROR with the traceback and the app is served without one;
* ``"on"`` - the app must complete its startup: anything else fails the invocation;
* ``"off"`` - no lifespan runs, and requests get no lifespan ``state``.

In every mode except ``"off"``, ``lifespan.startup.failed`` and a message that is not part
of the lifespan protocol (``http.response.start`` during startup...) fail the invocation at
once instead of leaving it waiting for a startup that never completes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from starlette.types import ASGIApp, Message

__all__ = ["LIFESPAN_MODES", "Lifespan", "LifespanError", "LifespanMode"]

log = logging.getLogger("aiservice.platforms")

LifespanMode = Literal["auto", "on", "off"]
LIFESPAN_MODES: tuple[LifespanMode, ...] = ("auto", "on", "off")


class LifespanError(RuntimeError):
    """The app's startup failed (``lifespan.startup.failed``, a protocol error, or "on")."""


class _Rejected(Exception):
    """Raised into the app by ``send`` when a message breaks the lifespan protocol."""


class Lifespan:
    """Startup once, keep the state, shutdown on :meth:`shutdown`.

    ``error_type`` is the :class:`LifespanError` subclass raised on failure (the Lambda
    bridge raises one that is also Mangum's ``LifespanFailure``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: LifespanMode = "auto",
        error_type: type[LifespanError] = LifespanError,
    ) -> None:
        if mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan mode must be one of {'|'.join(LIFESPAN_MODES)}")
        self.app = app
        self.mode = mode
        self.error_type = error_type
        self.state: dict[str, Any] = {}
        self.started = False
        self.supported = mode != "off"
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._received = False  # the app has asked for its first message
        self._unsupported = ""  # why the app looks like it has no lifespan support
        # Each resolves to None on success or the app's failure message: results, not
        # exceptions, so a failure nobody awaits (the loop closing) is not logged as lost.
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Run startup if it has not completed yet; raise ``error_type`` on failure."""
        if self.started or self.mode == "off":
            return
        if self._startup is None or self._failed(self._startup):
            self._begin()  # first call, or a new attempt after a failed one
        assert self._startup is not None
        error = await asyncio.shield(self._startup)
        if error is not None:
            await self._stop_task()
            raise self.error_type(error)
        self.started = True

    async def _stop_task(self, timeout: float = 1.0) -> None:
        """Cancel an app lifespan task still waiting after a failed startup (not leaked)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=timeout)

    def _begin(self) -> None:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._received, self._unsupported, self.supported = False, "", True
        self._startup, self._shutdown = loop.create_future(), loop.create_future()
        self._queue.put_nowait({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        self._task = loop.create_task(self._run(scope))

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Send ``lifespan.shutdown`` and wait (bounded) for the app to finish."""
        if not self.started or self._shutdown is None:
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
        self._startup = None  # a later invocation starts the app again

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except _Rejected:
            pass  # already recorded by _send
        except Exception as exc:
            self._crashed(exc)
        else:
            if not self._done(self._startup):
                self._unsupported = "it returned without completing startup"
        finally:
            self._settle()

    def _crashed(self, exc: Exception) -> None:
        if self._failed(self._startup):
            # Starlette re-raises what it reported as lifespan.startup.failed: logged already.
            log.debug("app lifespan ended with %r after a failed startup", exc)
            return
        if self._done(self._startup):
            # After startup: Starlette re-raising what it sent as lifespan.shutdown.failed
            # (logged by shutdown()) or a crash of the app's lifespan code.
            if not self._done(self._shutdown):
                log.error("Exception in 'lifespan' protocol after startup", exc_info=exc)
            return
        if not self._received:  # raised on the lifespan scope itself: no support
            self._unsupported = f"it raised {type(exc).__name__} on the lifespan scope"
            level = logging.ERROR if self.mode == "on" else logging.INFO
            log.log(level, "ASGI 'lifespan' protocol appears unsupported (%r)", exc)
            return
        outcome = (
            "the invocation fails (lifespan='on')"
            if self.mode == "on"
            else "serving requests without lifespan (lifespan='auto')"
        )
        log.error(
            "Exception in 'lifespan' protocol. The app's startup raised %s; %s",
            type(exc).__name__,
            outcome,
            exc_info=exc,
        )
        self._unsupported = f"its startup raised {type(exc).__name__}: {exc}"

    def _settle(self) -> None:
        """The app's lifespan task ended: resolve whatever is still waiting on it."""
        if self._startup is not None and not self._startup.done():
            if self.mode == "on":
                reason = self._unsupported or "it ended its lifespan during startup"
                self._startup.set_result(f"lifespan='on' but the app did not start: {reason}")
            else:
                self.supported = False  # serve without a lifespan, as uvicorn's "auto"
                self._startup.set_result(None)
        if self._shutdown is not None and not self._shutdown.done():
            self._shutdown.set_result(None)

    async def _receive(self) -> Message:
        self._received = True
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = str(message.get("type"))
        if not self._received:
            # A message before asking for lifespan.startup means the app treats this scope
            # as something else (an HTTP-only app): no lifespan support, as in Mangum.
            self._unsupported = f"it sent {kind!r} before receiving 'lifespan.startup'"
            raise _Rejected(self._unsupported)
        starting = not self._done(self._startup)
        phase = "startup" if starting else "shutdown"
        future = self._startup if starting else self._shutdown
        if kind not in (f"lifespan.{phase}.complete", f"lifespan.{phase}.failed"):
            error = f"the app sent {kind!r} during lifespan {phase}"
            log.error("Unexpected message in 'lifespan' protocol: %s", error)
            if future is not None and not future.done():
                future.set_result(error)
            raise _Rejected(error)  # stop the app instead of letting it wait forever
        if future is None or future.done():
            return
        failed = kind.endswith(".failed")
        if failed and starting:
            log.error("app startup failed (%s): %s", kind, message.get("message") or "")
        future.set_result((message.get("message") or kind) if failed else None)

    @staticmethod
    def _done(future: asyncio.Future[str | None] | None) -> bool:
        return future is not None and future.done()

    @staticmethod
    def _failed(future: asyncio.Future[str | None] | None) -> bool:
        return future is not None and future.done() and future.result() is not None
