"""The ``orchestrator.queue`` section: where async executions wait for a worker.

``backend`` names an entry of :data:`aiservice.queues.base.QUEUES` (``inprocess``, ``sqs``,
``cloud-tasks``, ``redis-streams`` or a plugin's); each built-in backend reads its own
sub-section. ``orchestrator.queue_url`` (older configuration) still selects ``sqs`` with
that URL: :func:`effective_queue` applies it.
"""

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from .factories import factory

if TYPE_CHECKING:
    from .sections import OrchestratorSettings

__all__ = [
    "CloudTasksQueueSettings",
    "QueueSettings",
    "RedisStreamsQueueSettings",
    "SqsQueueSettings",
    "effective_queue",
]


class Section(BaseModel):
    # The same rules as every config section (config.sections.Section), which imports this;
    # the default factories below are what config.sections.defaults returns.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class SqsQueueSettings(Section):
    url: str | None = None
    """The queue URL; messages are consumed by the Lambda bridge (SQS event source)."""
    region: str | None = None
    """Default: parsed from the URL."""
    endpoint_url: str | None = None
    """Override for the SQS endpoint (moto, LocalStack); default ``secrets.endpoint_url``."""


class CloudTasksQueueSettings(Section):
    project: str | None = None
    location: str = "us-central1"
    queue: str = "aiservice-executions"
    target_url: str | None = None
    """Public base URL of this service (Cloud Run URL); tasks call
    ``<target_url>/internal/tasks/executions``."""
    auth: Literal["oidc", "secret"] = "oidc"
    """How the task route authenticates Cloud Tasks: an OIDC token minted for
    ``service_account`` (Cloud Run's own check, or verified here), or a shared secret header."""
    service_account: str | None = None
    """Email of the account Cloud Tasks signs OIDC tokens as (needs ``roles/run.invoker``)."""
    audience: str | None = None
    """Audience of the OIDC token; default ``target_url``."""
    certs_url: str | None = None
    """Where the OIDC token's signing keys are read (default: Google's)."""
    secret: str | None = None
    """Shared secret (a ``secret://`` reference) sent as ``X-AIService-Task-Secret``."""
    dispatch_deadline: float = Field(300.0, ge=15, le=1800)
    """Seconds Cloud Tasks waits for the callback (the execution runs inside it): at least
    the longest flow timeout, at most the platform's request timeout."""
    max_attempts: int = Field(100, ge=-1)
    """Deliveries of one task before Cloud Tasks gives up (-1: unlimited); rendered into
    the queue creation command, like the backoffs."""
    min_backoff: float = Field(5.0, gt=0)
    max_backoff: float = Field(300.0, gt=0)
    emulator_host: str | None = None
    """``host:port`` of a Cloud Tasks emulator (plain gRPC, no credentials)."""


class RedisStreamsQueueSettings(Section):
    url: str | None = None
    """Default: ``cache.url`` (a ``secret://`` reference is resolved)."""
    stream: str = "orch:queue"
    """Stream key (the ``cache.namespace`` prefix is added)."""
    group: str = "workers"
    concurrency: int = Field(8, ge=1)
    """Executions one instance runs at a time from the stream."""
    claim_after: float = Field(60.0, gt=0)
    """Seconds a delivered entry may go without a heartbeat before another instance
    reclaims it (XAUTOCLAIM); keep it above ``orchestrator.lease_seconds``."""
    block_ms: int = Field(1000, ge=10)
    """How long one XREADGROUP waits for new entries."""
    stop_grace: float = Field(5.0, ge=0)
    """On shutdown, seconds to let running executions finish before leaving them to be
    reclaimed by another instance."""
    max_deliveries: int = Field(5, ge=1)
    """Deliveries of one entry (the first included) before it is moved to
    ``dead_letter_stream`` instead of being run again: a message that fails every time
    (an unknown execution, a file that cannot be indexed) must not loop forever. As the
    ``maxReceiveCount`` of the SQS redrive policy."""
    dead_letter_stream: str = "orch:queue:dead"
    """Stream key (``cache.namespace`` prefix added) that keeps the entries given up on,
    with the delivery count and the time; capped at about 10,000 entries."""


class QueueSettings(Section):
    backend: str = "inprocess"
    """``inprocess`` | ``sqs`` | ``cloud-tasks`` | ``redis-streams`` (or a plugin's name)."""
    sqs: SqsQueueSettings = Field(default_factory=factory(SqsQueueSettings.model_construct))
    cloud_tasks: CloudTasksQueueSettings = Field(
        default_factory=factory(CloudTasksQueueSettings.model_construct)
    )
    redis_streams: RedisStreamsQueueSettings = Field(
        default_factory=factory(RedisStreamsQueueSettings.model_construct)
    )


def effective_queue(orchestrator: "OrchestratorSettings") -> QueueSettings:
    """``orchestrator.queue``, with the deprecated ``queue_url`` / ``sqs_region`` applied."""
    queue = orchestrator.queue
    if orchestrator.queue_url and queue.backend in ("inprocess", "sqs"):
        sqs = queue.sqs.model_copy(
            update={
                "url": queue.sqs.url or orchestrator.queue_url,
                "region": queue.sqs.region or orchestrator.sqs_region,
            }
        )
        return queue.model_copy(update={"backend": "sqs", "sqs": sqs})
    return queue
