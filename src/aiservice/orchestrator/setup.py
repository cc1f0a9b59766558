"""Builds the orchestrator once per app and registers its readiness check.

The queue (``orchestrator.queue``) is built here too: looked up in
:data:`aiservice.queues.base.QUEUES` (imported lazily), started with the orchestrator's
handler (consumers that run inside the service start now) and stopped before the
orchestrator closes. Its consumers route messages by ``kind`` (executions, vector store
files: :data:`aiservice.queues.base.MESSAGE_HANDLERS`). A queue consumed here also
refreshes the depth / age gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..cache.state import get_durable_state
from ..queues.base import CONSUMERS, QUEUES, Queue, handler_for, measure
from .loader import load_flows
from .service import Orchestrator
from .store import ExecutionStore

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["build_queue", "durable_queue", "get_orchestrator", "start"]

log = logging.getLogger("aiservice.orchestrator")

_MEASURE_EVERY = 15.0


def build_queue(runtime: Runtime) -> Queue:
    """The configured queue backend (not started). Raises ``StartupError`` naming the key."""
    from ..config.queues import effective_queue
    from ..registry import PluginImportError, PluginNotFoundError
    from ..runtime import StartupError

    name = effective_queue(runtime.settings.orchestrator).backend
    try:
        factory = QUEUES.get(name)
    except (PluginNotFoundError, PluginImportError) as exc:
        raise StartupError(f"orchestrator.queue.backend: {exc}") from exc
    try:
        return factory(runtime.settings, runtime.secrets)
    except Exception as exc:  # a missing required key, a client that cannot be built
        raise StartupError(f"orchestrator.queue ({name}): {exc}") from exc


async def start(runtime: Runtime) -> None:
    """Load and validate flows; invalid flows fail readiness but do not stop the app."""
    flows, errors = load_flows(runtime.settings)
    for error in errors:
        log.error("invalid flow: %s", error)
    # Not the fail-open view: a lost execution write must surface (503 / redelivery).
    store = ExecutionStore(get_durable_state(runtime), runtime.settings.orchestrator.execution_ttl)
    queue = build_queue(runtime)
    orchestrator = Orchestrator(runtime, flows, errors, store, queue)
    runtime.orchestrator = orchestrator
    runtime.stack.push_async_callback(orchestrator.aclose)  # stops the queue first
    await _consume(runtime, queue)

    async def flows_valid() -> str:
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))
        return f"{len(flows)} flow(s) valid"

    runtime.health.add("flows", flows_valid, required=True)


async def _consume(runtime: Runtime, queue: Queue) -> None:
    if CONSUMERS.get():
        await queue.start(handler_for(runtime))  # routed by kind
        if queue.pull:
            _measure_in_background(runtime, queue)


async def durable_queue(runtime: Runtime) -> Queue | None:
    """The configured queue when it is durable, consumed in this process; else ``None``.

    The orchestrator's when flows are configured (it is built with them); otherwise
    built, started and stopped with the runtime here — a service with vector stores and no
    flows still indexes through the queue, and its consumers run the ``vectors.file``
    messages.
    """
    from ..config.queues import effective_queue

    if runtime.orchestrator is not None:
        queue = runtime.orchestrator.queue
    elif effective_queue(runtime.settings.orchestrator).backend == "inprocess":
        return None
    else:
        queue = build_queue(runtime)
        if queue.durable:
            runtime.stack.push_async_callback(queue.stop)
            await _consume(runtime, queue)
    return queue if queue.durable else None


def _measure_in_background(runtime: Runtime, queue: Queue) -> None:
    """Refresh the depth / age gauges of a queue this instance consumes, until close."""
    gauges = asyncio.create_task(_measure_loop(queue), name="queue-gauges")

    async def stop_gauges() -> None:
        gauges.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gauges

    runtime.stack.push_async_callback(stop_gauges)


async def _measure_loop(queue: Queue) -> None:
    while True:
        try:
            await measure(queue)
        except Exception as exc:  # a metric is not worth a crash; the queue reports errors
            log.debug("queue stats unavailable: %s", exc)
        await asyncio.sleep(_MEASURE_EVERY)


def get_orchestrator(runtime: Runtime) -> Orchestrator:
    orchestrator = runtime.orchestrator
    if orchestrator is None:
        raise RuntimeError("the orchestrator is not started: add 'aiservice.api.orchestrate'")
    return orchestrator
