"""``cloud-tasks``: Google Cloud Tasks, pushing each execution to this service over HTTP.

Each message becomes an HTTP task that POSTs ``{"kind", "execution_id", "flow"}`` to
``<target_url>/internal/tasks/executions`` (:mod:`aiservice.api.tasks`). The execution runs
inside that request, so Cloud Run bills and schedules CPU for it (no work after the
response, which request-based billing would throttle). A non-2xx answer — the instance
died, the execution is busy elsewhere, the state store is down — makes Cloud Tasks retry
the task with the queue's backoff, and the retry resumes the execution from its last
finished step. The queue's retry policy (attempts, backoffs) is set when it is created
(``aiservice render gcp`` prints the command); the dispatch deadline is set per task.

Authentication of the callback: ``auth: oidc`` asks Cloud Tasks for an OIDC token minted
for ``service_account`` (audience ``audience`` or ``target_url``); ``auth: secret`` sends
the shared ``secret`` in the ``X-AIService-Task-Secret`` header.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .base import Handler, Message, QueueStats

if TYPE_CHECKING:
    from ..config import Settings
    from ..config.queues import CloudTasksQueueSettings
    from ..secrets.base import SecretResolver

__all__ = ["SECRET_HEADER", "TASK_PATH", "CloudTasksQueue", "task_request"]

TASK_PATH = "/internal/tasks/executions"
SECRET_HEADER = "X-AIService-Task-Secret"


def task_request(
    cfg: CloudTasksQueueSettings, message: Message, secret: str | None
) -> dict[str, Any]:
    """The ``Task`` (as a dict for the client) that delivers ``message`` (pure)."""
    if not cfg.target_url:
        raise ValueError("orchestrator.queue.cloud_tasks.target_url is required")
    url = cfg.target_url.rstrip("/") + TASK_PATH
    http: dict[str, Any] = {
        "url": url,
        "http_method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": message.body().encode(),
    }
    if cfg.auth == "secret":
        if not secret:
            raise ValueError("orchestrator.queue.cloud_tasks.secret is required for auth: secret")
        http["headers"][SECRET_HEADER] = secret
    else:
        if not cfg.service_account:
            raise ValueError("orchestrator.queue.cloud_tasks.service_account is required")
        audience = cfg.audience or cfg.target_url.rstrip("/")
        http["oidc_token"] = {"service_account_email": cfg.service_account, "audience": audience}
    deadline = int(cfg.dispatch_deadline)
    return {"http_request": http, "dispatch_deadline": {"seconds": deadline}}


class CloudTasksQueue:
    name = "cloud-tasks"
    durable = True
    pull = False

    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        from ..config.queues import effective_queue

        self.cfg = effective_queue(settings.orchestrator).cloud_tasks
        project = self.cfg.project or settings.logging.gcp_project or settings.secrets.gcp_project
        if not project:
            raise ValueError("orchestrator.queue.cloud_tasks.project is required")
        self.path = f"projects/{project}/locations/{self.cfg.location}/queues/{self.cfg.queue}"
        self._secrets = secrets
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from google.cloud import tasks_v2

            if self.cfg.emulator_host:
                import grpc  # type: ignore[import-untyped]
                from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                    CloudTasksGrpcTransport,
                )

                channel = grpc.insecure_channel(self.cfg.emulator_host)
                transport = CloudTasksGrpcTransport(channel=channel)
                self._client = tasks_v2.CloudTasksClient(transport=transport)
            else:
                self._client = tasks_v2.CloudTasksClient()
        return self._client

    async def _secret(self) -> str | None:
        value = self.cfg.secret
        if value is None or self._secrets is None:
            return value
        return await self._secrets.resolve(value)

    async def enqueue(self, message: Message) -> None:
        task = task_request(self.cfg, message, await self._secret())

        def create() -> None:
            self.client().create_task(parent=self.path, task=task, timeout=10)

        # The client is blocking gRPC; keep it off the event loop.
        await asyncio.to_thread(create)

    async def start(self, handler: Handler) -> None:
        """Cloud Tasks pushes to the task route; nothing is consumed here."""

    async def stop(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.transport.close)
            self._client = None

    async def stats(self) -> QueueStats:
        # The v2 API exposes no queue depth; Cloud Monitoring has
        # cloudtasks.googleapis.com/queue/depth.
        return QueueStats()

    async def check(self) -> str:
        def get() -> Any:
            return self.client().get_queue(name=self.path, timeout=10)

        queue = await asyncio.to_thread(get)  # NotFound / PermissionDenied raise
        return f"cloud tasks queue {queue.name} ({queue.state.name})"
