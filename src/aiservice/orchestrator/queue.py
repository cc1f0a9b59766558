"""Async executions through SQS (Lambda): the producer and the consumer entry point.

The producer sends ``{"kind": "orchestrator.execution", "execution_id", "flow"}``; the
Lambda bridge routes SQS records by ``kind`` to :func:`handle_message`, which runs or
resumes the execution. Raising tells the bridge the record failed, so SQS redelivers it
(partial batch failure) — that is how a worker that died mid-run is recovered.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .record import ExecutionRecord
    from .service import Orchestrator

__all__ = ["KIND", "handle_message", "send_message"]

KIND = "orchestrator.execution"

_REGION = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def _client(orchestrator: Orchestrator) -> Any:
    if orchestrator._sqs is None:
        import boto3
        from botocore.config import Config

        config = orchestrator.config
        url = config.queue_url or ""
        match = _REGION.search(url)
        region = config.sqs_region or (match.group(1) if match else None)
        settings = orchestrator.runtime.settings
        # Bounded: a request must not hang on an unreachable endpoint.
        config_ = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3})
        orchestrator._sqs = boto3.client(
            "sqs", region_name=region, endpoint_url=settings.secrets.endpoint_url, config=config_
        )
    return orchestrator._sqs


async def send_message(orchestrator: Orchestrator, record: ExecutionRecord) -> None:
    body = json.dumps({"kind": KIND, "execution_id": record.execution_id, "flow": record.flow})

    def send() -> None:
        _client(orchestrator).send_message(QueueUrl=orchestrator.config.queue_url, MessageBody=body)

    # boto3 is blocking (and builds its client slowly the first time): keep it off the loop.
    await asyncio.to_thread(send)


async def handle_message(runtime: Runtime, message: dict[str, Any]) -> None:
    """Run or resume the execution named by ``message``; raise to have it redelivered."""
    from .setup import get_orchestrator

    execution_id = message.get("execution_id")
    if not isinstance(execution_id, str) or not execution_id:
        raise ValueError("orchestrator message without execution_id")
    # ExecutionBusyError (another worker's lease is live) propagates: SQS retries later.
    await get_orchestrator(runtime).resume(execution_id)
