"""``inprocess``: the execution runs as a tracked task of this process (development).

Nothing survives the process: an execution interrupted by a shutdown or a crash is
reported failed (see ``Orchestrator.get``), never resumed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .base import Handler, Message, QueueStats

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["InProcessQueue"]

log = logging.getLogger("aiservice.queues")


class InProcessQueue:
    name = "inprocess"
    durable = False
    pull = True

    def __init__(self, settings: Settings | None = None, secrets: SecretResolver | None = None):
        self._handler: Handler | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, message: Message) -> None:
        handler = self._handler
        if handler is None:
            raise RuntimeError("the in-process queue is not started")

        async def run() -> None:
            try:
                await handler(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background execution crashed")

        task = asyncio.create_task(run(), name=f"queue-{message.describe()}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def stats(self) -> QueueStats:
        return QueueStats(depth=len(self.tasks))

    async def check(self) -> str:
        return "in-process (executions do not survive the process)"
