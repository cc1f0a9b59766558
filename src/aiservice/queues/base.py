"""The queue protocol async executions wait in, and the registry of backends.

A queue carries :class:`Message` s, JSON objects routed by ``kind`` through
:data:`MESSAGE_HANDLERS`: ``orchestrator.execution`` (an execution id; the orchestrator
enqueues one per async execution) and ``vectors.file`` (a file attached to a vector
store, to index). :meth:`Queue.start` gets a :data:`Handler` (:func:`handler_for`); one
that raises leaves the message to be delivered again, which
resumes the execution from its last finished step (the orchestrator's lease makes sure
only one worker runs it at a time).

Backends differ in who consumes:

* ``inprocess`` — a task in this process; nothing survives the process (development).
* ``sqs`` — pushed to Lambda by the SQS event source (the Lambda bridge routes the record
  by ``kind``); :meth:`Queue.start` does nothing.
* ``cloud-tasks`` — pushed as an HTTP request to this service's task route
  (:mod:`aiservice.api.tasks`); :meth:`Queue.start` does nothing.
* ``redis-streams`` — pulled by a consumer group that runs inside every instance.

Backends are registered by dotted path and imported on first use, so a service that
does not use SQS never imports boto3.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..observability import metrics
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = [
    "CONSUMERS",
    "DEAD_LETTERS",
    "DEPTH",
    "KIND",
    "MESSAGE_HANDLERS",
    "OLDEST_AGE",
    "QUEUES",
    "REDELIVERIES",
    "Handler",
    "Message",
    "Queue",
    "QueueFactory",
    "QueueStats",
    "VECTORS_FILE",
    "cancel_and_wait",
    "handler_for",
]

KIND = "orchestrator.execution"
"""The ``kind`` of an execution message (how the Lambda bridge routes it)."""
VECTORS_FILE = "vectors.file"
"""The ``kind`` of a message indexing a file attached to a vector store."""

MessageHandler = Callable[[Any, dict[str, Any]], Awaitable[None]]
"""``handler(runtime, message)``; raising means the message failed and is delivered again."""

# Every consumer routes by kind through this one table: the Lambda bridge (SQS records),
# the Cloud Tasks route, and the consumers a pull queue runs (see handler_for).
MESSAGE_HANDLERS: Registry[MessageHandler] = Registry("message handler", group="aiservice.messages")
MESSAGE_HANDLERS.register(KIND, "aiservice.orchestrator.queue:handle_message")
MESSAGE_HANDLERS.register(VECTORS_FILE, "aiservice.api.vector_stores:handle_file_message")

DEPTH = metrics.gauge(
    "aiservice_queue_depth",
    "Async executions waiting or running in the queue (as last measured).",
    ("backend",),
)
OLDEST_AGE = metrics.gauge(
    "aiservice_queue_oldest_age_seconds",
    "Age of the oldest message in the queue (as last measured).",
    ("backend",),
)
DEAD_LETTERS = metrics.counter(
    "aiservice_queue_dead_letters_total",
    "Messages given up on after too many deliveries (moved to the dead-letter stream).",
    ("backend",),
)
REDELIVERIES = metrics.counter(
    "aiservice_queue_redeliveries_total",
    "Messages delivered again (a worker died, or the execution was busy or failed).",
    ("backend",),
)


class Message(NamedTuple):
    """A JSON object with a ``kind`` naming its handler in :data:`MESSAGE_HANDLERS`."""

    kind: str
    data: Mapping[str, Any]
    """The body's other fields."""
    delivery: int = 1
    """How many times this message was delivered (1 = first), when the queue knows."""

    @classmethod
    def execution(cls, execution_id: str, flow: str) -> Message:
        return cls(KIND, {"execution_id": execution_id, "flow": flow})

    @property
    def execution_id(self) -> str:
        value = self.data.get("execution_id")
        return value if isinstance(value, str) else ""

    def describe(self) -> str:
        """For logs: ids, never other content."""
        if self.kind == KIND:
            return f"execution {self.execution_id}"
        return f"{self.kind} message"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}

    def body(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def parse(cls, data: str | bytes | Mapping[str, Any], delivery: int = 1) -> Message:
        """The message in ``data``; ``ValueError`` for a kind nothing handles, or an
        execution message naming no execution."""
        body = json.loads(data) if isinstance(data, str | bytes) else data
        if not isinstance(body, Mapping):
            raise ValueError("queue message is not a JSON object")
        kind = body.get("kind", KIND)
        if not isinstance(kind, str) or kind not in MESSAGE_HANDLERS:
            raise ValueError(f"no handler for queue message kind {kind!r}")
        if kind == KIND:
            execution_id = body.get("execution_id")
            if not isinstance(execution_id, str) or not execution_id:
                raise ValueError("queue message without execution_id")
        return cls(kind, {k: v for k, v in body.items() if k != "kind"}, delivery)


class QueueStats(NamedTuple):
    depth: int | None = None
    """Messages waiting or in flight (``None``: the backend cannot tell)."""
    oldest_age: float | None = None
    """Seconds since the oldest message was enqueued."""


Handler = Callable[[Message], Awaitable[None]]
"""Handles the message; raising leaves it to be delivered again."""


def handler_for(runtime: Any) -> Handler:
    """The handler a queue consumes with: the message's kind's, with ``runtime``."""

    async def handle(message: Message) -> None:
        await MESSAGE_HANDLERS.get(message.kind)(runtime, message.as_dict())

    return handle


class Queue(Protocol):
    name: str
    durable: bool
    """A message outlives this process: an interrupted execution is resumed elsewhere."""
    pull: bool
    """The service's own instances consume it (:meth:`start` runs consumers), so they also
    measure it; push queues (SQS, Cloud Tasks) have their platform's depth metrics."""

    async def enqueue(self, message: Message) -> None:
        """Hand the message to the queue; raise if it was not accepted."""
        ...

    async def start(self, handler: Handler) -> None:
        """Start consuming inside this process (pull queues); no-op for push queues."""
        ...

    async def stop(self) -> None:
        """Stop consuming; executions still running are left to be delivered again."""
        ...

    async def stats(self) -> QueueStats:
        """Depth and age of the queue (for the metrics gauges)."""
        ...

    async def check(self) -> str:
        """Raise if the queue does not exist or is unreachable; else a short description."""
        ...


CONSUMERS: ContextVar[bool] = ContextVar("aiservice_queue_consumers", default=True)
"""Whether the app's startup starts the queue (its consumers). ``aiservice check`` starts
the app with it off: a preflight must not take work from a shared queue."""

QueueFactory = Callable[["Settings", "SecretResolver"], Queue]
"""``factory(settings, secrets)``: backends read ``settings.orchestrator.queue``."""

QUEUES: Registry[QueueFactory] = Registry("queue backend", group="aiservice.queues")
QUEUES.register("inprocess", "aiservice.queues.inprocess:InProcessQueue")
QUEUES.register("sqs", "aiservice.queues.sqs:SqsQueue", "pip install 'aiservice[aws]'")
QUEUES.register(
    "cloud-tasks", "aiservice.queues.cloudtasks:CloudTasksQueue", "pip install 'aiservice[gcp]'"
)
QUEUES.register(
    "redis-streams",
    "aiservice.queues.redis_streams:RedisStreamsQueue",
    "pip install 'aiservice[redis]'",
)


async def measure(queue: Queue) -> QueueStats:
    """Read the queue's stats into the gauges (a failure leaves them as they were)."""
    stats = await queue.stats()
    if stats.depth is not None:
        DEPTH.labels(queue.name).set(stats.depth)
    if stats.oldest_age is not None:
        OLDEST_AGE.labels(queue.name).set(stats.oldest_age)
    return stats


async def cancel_and_wait(task: asyncio.Task[Any], every: float = 0.05) -> None:
    """Cancel ``task`` and wait until it ended, cancelling it again while it runs on.

    ``task.cancel(); await task`` can wait forever: redis-py's asyncio client sometimes
    swallows a cancellation that lands while a reply is being read (redis/redis-py#2028,
    #2551), and the task carries on — a lease heartbeat keeps renewing, so the execution
    it guards never returns and its queue entry is never acknowledged. The task's own
    result or error is not re-raised; a cancellation of the caller is.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at collection
