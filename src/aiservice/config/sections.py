"""The configuration sections: one pydantic model per top-level key, unknown keys rejected."""

from collections.abc import Callable
from typing import Literal, Self, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from .allowlist import parse_allow_entry
from .factories import factory, new_dict, new_list
from .queues import QueueSettings

MiB = 1024 * 1024


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored.

    A section's validator is built when a configuration sets it (``defer_build``); the
    sections left at their defaults are built by :func:`defaults`, without one.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


S = TypeVar("S", bound=BaseModel)


def defaults(section: type[S]) -> Callable[[], S]:
    """The default factory of a ``section`` field: its defaults, which are valid by
    declaration, without validating them (that would build the section's validator)."""
    return factory(section.model_construct)


class ServiceSettings(Section):
    name: str = "aiservice"
    """Shown in logs, metrics (build info) and rendered manifests."""


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    reload: bool = False
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"
    graceful_shutdown_seconds: float = Field(8.0, ge=0)
    """Time given to in-flight requests on SIGTERM (Cloud Run allows 10 s)."""
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    """Largest request head uvicorn buffers before refusing it (its h11 parser's
    ``h11_max_incomplete_event_size``; the httptools parser has no such limit)."""
    keepalive_timeout_seconds: float | None = Field(None, gt=0)
    """Idle keep-alive connections are closed after this long. Unset: 650 s in the container
    bridge (outlives Cloud Run's and GCLB's idle timeout), uvicorn's 5 s for ``serve``."""


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Case-insensitive (``debug`` works); ``WARN`` is read as ``WARNING``."""
    format: Literal["json", "text"] = "json"
    access_log: bool = True
    gcp_project: str | None = None
    """Google Cloud project id: JSON lines then carry Cloud Logging's trace fields
    (``projects/<project>/traces/<trace id>``). Falls back to ``GOOGLE_CLOUD_PROJECT``."""

    @field_validator("level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        level = value.strip().upper()
        return "WARNING" if level == "WARN" else level

    @field_validator("format", mode="before")
    @classmethod
    def _format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class RateLimitValues(Section):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    budget_usd_per_day: float | None = Field(None, gt=0)


class RequestLimits(Section):
    """Bounds on the work one LLM request may ask for (``limits.requests``).

    Checked by the gateway before any upstream call or cache lookup; a request over a
    bound is a 400 naming the request field (``param``) and the limit. See
    docs/gateway-limits.md.
    """

    max_messages: int = Field(2048, ge=1)
    max_tools: int = Field(128, ge=1)
    max_n: int = Field(16, ge=1, le=16)
    """Choices per chat request (``n``); the published request schema allows at most 16, so
    this can only lower it."""
    max_tokens: int = Field(131_072, ge=1)
    """Bound on ``max_tokens`` / ``max_completion_tokens``."""
    max_embedding_inputs: int = Field(2048, ge=1)
    max_embedding_dimensions: int = Field(8192, ge=1)
    max_embedding_values: int = Field(2_097_152, ge=1)
    """Inputs × ``dimensions`` of one embeddings request: the floats the gateway decodes,
    caches and encodes (2 Mi floats ≈ 40 MB of JSON)."""
    deadline_seconds: float = Field(120.0, gt=0)
    """Overall time for one LLM request, all retries and fallbacks included (for a
    stream: until its first chunk); past it the client gets 504 ``deadline_exceeded``."""
    stream_idle_seconds: float | None = Field(None, gt=0)
    """After a stream's first chunk, the longest wait for the next one (the provider's
    read timeout bounds each read, not an upstream that trickles bytes or keep-alive
    comments without a chunk). ``None``: no bound beyond the read timeout."""


class LimitsSettings(RateLimitValues):
    """Per-key limits (the inherited fields), global limits and request-size limits."""

    max_body_bytes: int = Field(MiB, ge=1)
    max_json_depth: int = Field(64, ge=2, le=512)
    """Deepest nesting of arrays/objects accepted in a JSON body (400 beyond)."""
    body_timeout_seconds: float = Field(30.0, gt=0)
    """The whole request body must arrive within this long of the request head (408)."""
    max_upstream_body_bytes: int = Field(32 * MiB, ge=1024)
    """The most of one upstream answer read at once (a provider's, a step's, a webhook
    endpoint's; after decompression): beyond it the call fails as a protocol error (502)."""
    max_upstream_line_bytes: int = Field(16 * MiB, ge=1024)
    """The longest line (SSE / NDJSON event) of a streamed upstream answer."""
    requests: RequestLimits = Field(default_factory=defaults(RequestLimits))
    global_: RateLimitValues = Field(
        default_factory=defaults(RateLimitValues),
        validation_alias=AliasChoices("global", "global_"),
        serialization_alias="global",
    )
    on_backend_error: Literal["allow", "deny"] = "allow"


class AuthKeySettings(Section):
    key: str
    admin: bool = False
    limits: RateLimitValues | None = None


class AuthSettings(Section):
    api_keys: list[str] = Field(default_factory=new_list)
    """Accepted client keys (values or ``secret://`` references)."""
    admin_keys: list[str] = Field(default_factory=new_list)
    """Keys that may also call ``/admin/*``."""
    keys: dict[str, AuthKeySettings] = Field(default_factory=new_dict)
    """Named keys with optional per-key limits."""
    min_key_length: int = Field(16, ge=1)
    """Configured keys shorter than this (after secret resolution) stop the service."""


class CorsSettings(Section):
    allowed_origins: list[str] = Field(default_factory=new_list)
    allow_credentials: bool = False
    allowed_methods: list[str] = Field(default_factory=factory(lambda: ["GET", "POST", "OPTIONS"]))
    allowed_headers: list[str] = Field(
        default_factory=factory(
            lambda: ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
        )
    )
    max_age: int = 600


class CacheSettings(Section):
    backend: str = "memory"
    url: str | None = None
    """Redis URL (``redis://`` or ``rediss://``); may be a ``secret://`` reference."""
    password: str | None = None
    """Redis password (usually a ``secret://`` reference), overrides one in ``url``."""
    cluster: bool = False
    """``cache.url`` is a node of a Redis Cluster (ElastiCache cluster mode, Memorystore for
    Redis Cluster): keys become ``{<namespace>}:<key>``, one hash slot for the deployment."""
    max_connections: int = Field(50, ge=1)
    table: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    ttl: int = Field(3600, ge=1)
    namespace: str = "aiservice"
    max_entries: int = Field(10_000, ge=1)
    max_bytes: int = Field(64 * MiB, ge=1)
    timeout_ms: int = Field(50, ge=1)
    mode: Literal["off", "on", "deterministic"] = "deterministic"
    """``deterministic`` (default) caches only ``temperature: 0`` or seeded requests, whose
    answers are meant to repeat; ``on`` caches every request; ``off`` disables the cache."""
    lease_ms: int = Field(30_000, ge=1)
    """How long one instance owns an upstream call that others wait for (coalescing)."""
    wait_ms: int = Field(10_000, ge=0)
    """How long followers on other instances wait for the owner's entry."""

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        # YAML 1.1 reads unquoted ``on`` / ``off`` as booleans.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _cluster_tag(self) -> Self:
        # ``{<namespace>}`` must be a non-empty hash tag: Redis hashes the text between the
        # first ``{`` and the next ``}``, and an empty tag would hash each whole key.
        if self.cluster and (not self.namespace or self.namespace.startswith("}")):
            raise ValueError(
                "cache.namespace must be non-empty and not start with '}' when cache.cluster "
                "is true (it is the Redis Cluster hash tag)"
            )
        return self


class VertexSettings(Section):
    project: str
    location: str = "us-central1"


class ProviderSettings(Section):
    type: str
    base_url: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    region: str | None = None
    vertex: VertexSettings | None = None
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    retry_backoff: float = Field(0.5, ge=0)
    """First retry waits up to this many seconds; the window doubles per retry (full jitter)."""
    headers: dict[str, str] = Field(default_factory=new_dict)
    cooldown_seconds: float = Field(30.0, ge=0)
    failure_threshold: int = Field(3, ge=1)
    """Consecutive failures after which a deployment is cooled down."""


class DeploymentSettings(Section):
    provider: str
    model: str
    responses_api: Literal["translate", "native"] = "translate"
    """``native``: ``/v1/responses`` passes through untranslated to the upstream's own
    ``/responses`` (``type: openai`` providers); ``translate`` goes through chat."""


class PriceSettings(Section):
    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)


class EmbeddingsSettings(Section):
    batch_size: int = Field(100, ge=1)
    concurrency: int = Field(4, ge=1)
    max_retries: int = Field(3, ge=0)


class WebhookSettings(Section):
    timeout: float = Field(10.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    initial_delay: float = Field(0.5, ge=0)
    """First retry delay (doubles per attempt, capped at 30 s) unless Retry-After says otherwise."""


class OrchestratorSettings(Section):
    max_concurrency: int = Field(16, ge=1)
    default_step_timeout: float = Field(30.0, gt=0)
    default_flow: str | None = None
    """Flow run by ``POST /orchestrate`` (no flow in the path); unset = the only configured
    flow when there is exactly one."""
    execution_ttl: int = Field(86_400, ge=1)
    queue: QueueSettings = Field(default_factory=defaults(QueueSettings))
    queue_url: str | None = None
    """Deprecated: ``queue: {backend: sqs, sqs: {url: ...}}``."""
    ssrf_allowlist: list[str] = Field(default_factory=new_list)
    """Non-public destinations that built URLs (request input, step outputs, webhooks) may
    reach: ``host``, ``address``, ``CIDR`` (any port) or ``host:port``, ``[IPv6]:port``."""
    webhook: WebhookSettings = Field(default_factory=defaults(WebhookSettings))
    lease_seconds: float = Field(30.0, gt=0)
    """A worker's lease on a running execution (renewed while alive); when it lapses the
    execution is resumed by a redelivered message or reported failed."""
    max_worker_attempts: int = Field(3, ge=1)
    """Workers that may start one execution before it is marked failed."""
    sqs_region: str | None = None
    """Region of ``queue_url`` (default: parsed from the URL)."""

    @field_validator("ssrf_allowlist")
    @classmethod
    def _allowlist_syntax(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            parse_allow_entry(entry)  # ValueError names the entry and what is wrong
        return entries


class SecretsSettings(Section):
    ttl: float = Field(300.0, ge=0)
    gcp_project: str | None = None
    aws_region: str | None = None
    endpoint_url: str | None = None
    """Override for the AWS endpoint (moto, LocalStack)."""
    gcp_endpoint: str | None = None
    """Override for the Secret Manager API endpoint; a plain ``http://`` one gets no credentials."""


METRIC_DIMENSIONS = (
    "provider",
    "model",
    "status",
    "route",
    "method",
    "result",
    "flow",
    "scope",
    "backend",
)
"""Metric labels pushed as dimensions by default: each has a small, fixed set of values, and
one request rarely gives one of them two values (``operation`` would: get, set, delete),
so an invocation fits one EMF document."""


class MetricsSettings(Section):
    enabled: bool = True
    require_auth: bool = False
    created_series: bool = False
    """Also expose the ``*_created`` timestamp series of counters and histograms."""
    sink: Literal["auto", "prometheus", "emf", "otlp", "none"] = "auto"
    """Where metrics are pushed besides ``/metrics``: ``emf`` writes CloudWatch Embedded
    Metric Format lines at the end of each Lambda invocation, ``otlp`` exports to
    ``tracing.exporter``'s OTLP endpoint; ``auto`` is ``emf`` in the
    Lambda bridge and ``prometheus`` (scrape only) elsewhere."""
    namespace: str = Field("aiservice", min_length=1, max_length=255, pattern=r"^[^:].*$")
    """CloudWatch namespace of the EMF metrics."""
    dimensions: list[str] = Field(
        default_factory=factory(lambda: list(METRIC_DIMENSIONS)), max_length=29
    )
    """Metric labels kept as EMF dimensions (the rest are summed away); never put
    per-request values here. ``service`` (``service.name``) is always added."""


def default_providers() -> dict[str, ProviderSettings]:
    return {"fake": ProviderSettings.model_construct(type="fake")}


def default_models() -> dict[str, list[DeploymentSettings]]:
    return {"fake": [DeploymentSettings.model_construct(provider="fake", model="fake")]}
