"""The consumer entry point for pushed queue messages (SQS records on Lambda).

The producer side lives behind :mod:`aiservice.queues` (``orchestrator.queue``). The Lambda
bridge routes SQS records by ``kind`` to :func:`handle_message`, which runs or resumes the
execution. Raising tells the bridge the record failed, so SQS redelivers it (partial batch
failure) — that is how a worker that died mid-run is recovered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..queues.base import KIND, Message

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["KIND", "handle_message"]


async def handle_message(runtime: Runtime, message: dict[str, Any]) -> None:
    """Run or resume the execution named by ``message``; raise to have it redelivered."""
    from .setup import get_orchestrator

    parsed = Message.parse(message)  # ValueError: no execution_id
    # ExecutionBusyError (another worker's lease is live) propagates: SQS retries later.
    await get_orchestrator(runtime).resume(parsed.execution_id)
