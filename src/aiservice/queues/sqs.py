"""``sqs``: Amazon SQS, consumed by Lambda through its SQS event source.

The producer sends ``{"kind": "orchestrator.execution", "execution_id", "flow"}``; the
Lambda bridge routes each record by ``kind`` to
:func:`aiservice.orchestrator.queue.handle_message`. A record whose handler raised is
reported as a partial batch failure, so SQS delivers it again after its visibility
timeout — that is how a worker that died mid-run is recovered.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from .base import Handler, Message, QueueStats

if TYPE_CHECKING:
    from ..config import Settings
    from ..secrets.base import SecretResolver

__all__ = ["SqsQueue", "region_of"]

_REGION = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def region_of(url: str) -> str | None:
    match = _REGION.search(url)
    return match.group(1) if match else None


class SqsQueue:
    name = "sqs"
    durable = True
    pull = False

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        from ..config.queues import effective_queue

        cfg = effective_queue(settings.orchestrator).sqs
        if not cfg.url:
            raise ValueError("orchestrator.queue.sqs.url is required for the sqs queue")
        self.url = cfg.url
        self._region = cfg.region or region_of(cfg.url)
        self._endpoint = cfg.endpoint_url or settings.secrets.endpoint_url
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # Bounded: a request must not hang on an unreachable endpoint.
            config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3})
            self._client = boto3.client(
                "sqs", region_name=self._region, endpoint_url=self._endpoint, config=config
            )
        return self._client

    async def enqueue(self, message: Message) -> None:
        body = message.body()
        # boto3 is blocking (and builds its client slowly the first time): off the loop.
        await asyncio.to_thread(
            lambda: self.client().send_message(QueueUrl=self.url, MessageBody=body)
        )

    async def start(self, handler: Handler) -> None:
        """Lambda's event source consumes the queue, not this process."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def _attributes(self) -> dict[str, str]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        out = self.client().get_queue_attributes(QueueUrl=self.url, AttributeNames=names)
        attributes: dict[str, str] = out.get("Attributes", {})
        return attributes

    async def stats(self) -> QueueStats:
        # The age of the oldest message is a CloudWatch metric, not a queue attribute.
        attributes = await asyncio.to_thread(self._attributes)
        depth = sum(int(v) for v in attributes.values())
        return QueueStats(depth=depth)

    async def check(self) -> str:
        stats = await self.stats()  # raises QueueDoesNotExist / access denied
        return f"{stats.depth} messages waiting or in flight (sqs {self.url})"
