"""Settings: built-in defaults < YAML file < profile overlay < ``.env`` < environment.

This is the only module that reads the process environment. Everything else receives a
:class:`Settings` instance (and, for ``secret://env/...`` references, the environment
snapshot it carries).

* YAML file: ``--config PATH``, else ``AISERVICE_CONFIG``, else ``./aiservice.yaml`` if present.
* Profile: ``--profile NAME`` or ``AISERVICE_ENV`` selects ``config/NAME.yaml`` (next to the
  YAML file, else in the working directory), deep-merged over the file.
* Environment: ``AISERVICE_<SECTION>__<KEY>=value`` (values may be JSON for lists/maps).

Any string value may be a secret reference (``secret://env/NAME``); references are kept as
written here and resolved by :mod:`aiservice.secrets` so they are never logged.

Invalid input raises :class:`~aiservice.errors.ConfigError` naming the file (or variable)
and the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from .errors import ConfigError

__all__ = [
    "AuthKeySettings",
    "AuthSettings",
    "CacheSettings",
    "ConfigError",
    "CorsSettings",
    "DeploymentSettings",
    "LimitsSettings",
    "ProviderSettings",
    "RateLimitValues",
    "Settings",
    "load_settings",
]

ENV_PREFIX = "AISERVICE_"
DEFAULT_CONFIG_FILE = "aiservice.yaml"
MiB = 1024 * 1024


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["json", "text"] = "json"
    access_log: bool = True


class RateLimitValues(Section):
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    budget_usd_per_day: float | None = Field(None, gt=0)


class LimitsSettings(RateLimitValues):
    """Per-key limits (the inherited fields), global limits and request-size limits."""

    max_body_bytes: int = Field(MiB, ge=1)
    global_: RateLimitValues = Field(
        default_factory=RateLimitValues, validation_alias=AliasChoices("global", "global_")
    )
    on_backend_error: Literal["allow", "deny"] = "allow"


class AuthKeySettings(Section):
    key: str
    admin: bool = False
    limits: RateLimitValues | None = None


class AuthSettings(Section):
    api_keys: list[str] = Field(default_factory=list)
    """Accepted client keys (values or ``secret://`` references)."""
    admin_keys: list[str] = Field(default_factory=list)
    """Keys that may also call ``/admin/*``."""
    keys: dict[str, AuthKeySettings] = Field(default_factory=dict)
    """Named keys with optional per-key limits."""


class CorsSettings(Section):
    allowed_origins: list[str] = Field(default_factory=list)
    allow_credentials: bool = False
    allowed_methods: list[str] = Field(default_factory=lambda: ["GET", "POST", "OPTIONS"])
    allowed_headers: list[str] = Field(
        default_factory=lambda: ["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"]
    )
    max_age: int = 600


class CacheSettings(Section):
    backend: str = "memory"
    url: str | None = None
    """Redis URL (``redis://`` or ``rediss://``); may be a ``secret://`` reference."""
    password: str | None = None
    """Redis password (usually a ``secret://`` reference), overrides one in ``url``."""
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
    headers: dict[str, str] = Field(default_factory=dict)
    cooldown_seconds: float = Field(30.0, ge=0)
    failure_threshold: int = Field(3, ge=1)
    """Consecutive failures after which a deployment is cooled down."""


class DeploymentSettings(Section):
    provider: str
    model: str


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
    execution_ttl: int = Field(86_400, ge=1)
    queue_url: str | None = None
    """SQS queue for async executions on Lambda; unset = run in-process."""
    ssrf_allowlist: list[str] = Field(default_factory=list)
    """Hosts or CIDRs that request-supplied URLs (webhooks) may reach despite the SSRF guard."""
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    lease_seconds: float = Field(30.0, gt=0)
    """A worker's lease on a running execution (renewed while alive); when it lapses the
    execution is resumed by a redelivered message or reported failed."""
    max_worker_attempts: int = Field(3, ge=1)
    """Workers that may start one execution before it is marked failed."""
    sqs_region: str | None = None
    """Region of ``queue_url`` (default: parsed from the URL)."""


class SecretsSettings(Section):
    ttl: float = Field(300.0, ge=0)
    gcp_project: str | None = None
    aws_region: str | None = None
    endpoint_url: str | None = None
    """Override for the AWS endpoint (moto, LocalStack)."""
    gcp_endpoint: str | None = None
    """Override for the Secret Manager API endpoint; a plain ``http://`` one gets no credentials."""


class MetricsSettings(Section):
    enabled: bool = True
    require_auth: bool = False


class DeploySettings(Section):
    """Inputs of ``aiservice render`` that are not runtime settings."""

    image: str = "aiservice:latest"
    region: str = "us-east-1"
    gcp_project: str = "my-project"
    gcp_region: str = "us-central1"
    memory_mb: int = Field(1024, ge=128)
    cpu: str = "1"
    timeout_seconds: int = Field(540, ge=1)
    concurrency: int = Field(80, ge=1)
    min_instances: int = Field(0, ge=0)
    max_instances: int = Field(10, ge=1)
    replicas: int = Field(2, ge=1)
    ollama_sidecar: bool = False
    models_bucket: str | None = None
    stage: str = "dev"
    """Serverless Framework stage (Lambda) and the suffix of per-stage resource names."""
    api_timeout_seconds: int = Field(29, ge=1, le=900)
    """Lambda HTTP function timeout (API Gateway cuts requests at 30 s)."""
    lambda_streaming: bool = True
    """Also render the Lambda Web Adapter function with a RESPONSE_STREAM Function URL."""
    namespace: str = "default"
    """Kubernetes namespace."""
    redis: bool = True
    """Render a Redis for docker-compose and Kubernetes (shared cache and limits)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra plain environment variables for every target."""


class LambdaEventSettings(Section):
    """What to do with a non-HTTP Lambda event (EventBridge rule, schedule, SNS, S3)."""

    trigger: Literal["eventbridge", "sns", "s3"] = "eventbridge"
    schedule: str | None = None
    """``rate(1 hour)`` / ``cron(...)``: rendered as a schedule of the Lambda worker."""
    match: dict[str, str] = Field(default_factory=dict)
    """Fields that must equal these values (event top level; each record for SNS/S3)."""
    action: str = "http"
    """``http``: an in-process request to the app; ``message``: a queue message handler."""
    method: str = "POST"
    path: str | None = None
    body: Any = None
    """JSON body of the ``http`` action; ``None`` sends the event (or record) itself."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer`` by the ``http`` action (value or reference)."""
    message: dict[str, Any] = Field(default_factory=dict)
    """The ``message`` action's message (needs ``kind``); the event is added as ``event``."""


class AwsLambdaSettings(Section):
    events: dict[str, LambdaEventSettings] = Field(default_factory=dict)
    """Named actions for non-HTTP events, tried in order; the first match runs."""
    api_gateway_base_path: str = "/"
    """Custom-domain base path to strip from REST API paths."""


def _default_providers() -> dict[str, ProviderSettings]:
    return {"fake": ProviderSettings(type="fake")}


def _default_models() -> dict[str, list[DeploymentSettings]]:
    return {"fake": [DeploymentSettings(provider="fake", model="fake")]}


# The YAML data of the current load_settings() call; pydantic-settings builds sources
# from a classmethod, so the data travels through a context variable.
_yaml_layers: ContextVar[tuple[dict[str, Any], ...]] = ContextVar("_yaml_layers", default=())
_env_layers: ContextVar[tuple[Mapping[str, str], ...]] = ContextVar("_env_layers", default=())


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings` (or directly in tests)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
        populate_by_name=True,
    )

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    cors: CorsSettings = Field(default_factory=CorsSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=_default_providers)
    models: dict[str, list[DeploymentSettings]] = Field(default_factory=_default_models)
    pricing: dict[str, PriceSettings] = Field(default_factory=dict)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    flows: dict[str, Any] = Field(default_factory=dict)
    flows_dir: str | None = None
    functions: dict[str, Any] = Field(default_factory=dict)
    """Free-form values (ML function URLs, ...) that flows reference as ``settings.functions``."""
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    aws_lambda: AwsLambdaSettings = Field(default_factory=AwsLambdaSettings)

    _environ: Mapping[str, str] = PrivateAttr(default_factory=dict)
    _sources: tuple[str, ...] = PrivateAttr(default=())
    _profile: str | None = PrivateAttr(default=None)

    @property
    def environ(self) -> Mapping[str, str]:
        """Environment snapshot (process env over ``.env``) for ``secret://env/`` references."""
        return self._environ

    @property
    def sources(self) -> tuple[str, ...]:
        """The files this configuration was read from, lowest priority first."""
        return self._sources

    @property
    def profile(self) -> str | None:
        return self._profile

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first. Direct construction (Settings(...)) keeps init kwargs on top
        # and reads no environment unless load_settings() put layers in the context.
        env_sources = [_MappingEnvSource(settings_cls, m) for m in reversed(_env_layers.get())]
        yaml_sources = [_DictSource(settings_cls, d) for d in reversed(_yaml_layers.get())]
        return (init_settings, *env_sources, *yaml_sources)


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _MappingEnvSource(EnvSettingsSource):
    """``EnvSettingsSource`` over an explicit mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], mapping: Mapping[str, str]) -> None:
        self._mapping = mapping
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._mapping, self.case_sensitive, self.env_ignore_empty)


def _read_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml  # only when there is a file to read: the defaults need no parser

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found", source=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", source=str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{problem}{where}", source=str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections", source=str(path))
    return data


def _read_dotenv(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values  # shipped with pydantic-settings

    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(data: Mapping[str, Any], path: tuple[str | int, ...]) -> bool:
    node: Any = data
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _env_name_for(path: tuple[str | int, ...], env: Mapping[str, str]) -> str | None:
    upper = {k.upper() for k in env}
    parts = [str(p).upper() for p in path if not isinstance(p, int)]
    for depth in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:depth])
        if name in upper:
            return name
    return None


def _describe_errors(
    exc: ValidationError,
    layers: Sequence[tuple[str, dict[str, Any]]],
    env_layers: Sequence[tuple[str, Mapping[str, str]]],
) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p != "global_") or ("<root>",)
        key = ".".join(str(p) for p in loc)
        source = "defaults"
        for name, env in reversed(env_layers):
            var = _env_name_for(loc, env)
            if var:
                source = f"{name} variable {var}"
                break
        else:
            for name, data in reversed(layers):
                if _has_path(data, loc) or (len(loc) > 1 and _has_path(data, loc[:-1])):
                    source = name
                    break
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{source}: {key}: {message}")
    return "\n  ".join(lines)


def _reject_unknown_sections(origin: str, mapping: Mapping[str, str]) -> None:
    """A typo such as ``AISERVICE_CAHCE__TTL`` would otherwise be ignored silently."""
    known = set(Settings.model_fields)
    for name in mapping:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX):
            section = upper[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in known:
                raise ConfigError(
                    f"unknown section {section!r} (known: {', '.join(sorted(known))})",
                    source=f"{origin} variable {name}",
                    key=section,
                )


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dotenv_file: str | os.PathLike[str] | None = ".env",
    cwd: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build :class:`Settings` from files and the environment (see the module docstring).

    ``environ`` defaults to the process environment; tests pass their own mapping.
    """
    env = dict(os.environ if environ is None else environ)
    base_dir = Path(cwd) if cwd is not None else Path.cwd()

    explicit = config_file if config_file is not None else env.get(ENV_PREFIX + "CONFIG")
    path: Path | None
    if explicit:
        path = Path(explicit)
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ConfigError("config file not found", source=str(path))
    else:
        candidate = base_dir / DEFAULT_CONFIG_FILE
        path = candidate if candidate.is_file() else None

    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((str(path), _read_yaml(path, "config file")))

    profile = profile or env.get(ENV_PREFIX + "ENV") or None
    if profile:
        profile_dir = (path.parent if path is not None else base_dir) / "config"
        profile_path = profile_dir / f"{profile}.yaml"
        if not profile_path.is_file():
            known = (
                sorted(p.stem for p in profile_dir.glob("*.yaml")) if profile_dir.is_dir() else []
            )
            raise ConfigError(
                f"unknown profile {profile!r} (known: {', '.join(known) or 'none'})",
                source=str(profile_path),
                key="AISERVICE_ENV / --profile",
            )
        layers.append((str(profile_path), _read_yaml(profile_path, "profile")))

    dotenv: dict[str, str] = {}
    if dotenv_file is not None:
        dotenv_path = Path(dotenv_file)
        dotenv = _read_dotenv(dotenv_path if dotenv_path.is_absolute() else base_dir / dotenv_path)
    # AISERVICE_CONFIG / AISERVICE_ENV select files; they are not settings keys.
    selectors = {ENV_PREFIX + "CONFIG", ENV_PREFIX + "ENV"}
    env_for_settings = {k: v for k, v in env.items() if k.upper() not in selectors}
    # PORT is the platform convention (Cloud Run, Heroku, Lambda Web Adapter).
    if "PORT" in env and ENV_PREFIX + "SERVER__PORT" not in {k.upper() for k in env}:
        env_for_settings[ENV_PREFIX + "SERVER__PORT"] = env["PORT"]
    dotenv_for_settings = {k: v for k, v in dotenv.items() if k.upper() not in selectors}

    for origin, mapping in ((".env", dotenv_for_settings), ("environment", env_for_settings)):
        _reject_unknown_sections(origin, mapping)

    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _deep_merge(merged, data)
    env_layers = [(".env", dotenv_for_settings), ("environment", env_for_settings)]
    yaml_token = _yaml_layers.set((merged,))
    env_token = _env_layers.set(tuple(m for _, m in env_layers))
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe_errors(exc, layers, env_layers)) from exc
    finally:
        _yaml_layers.reset(yaml_token)
        _env_layers.reset(env_token)

    settings._environ = {**dotenv, **env}
    settings._sources = tuple(name for name, _ in layers)
    settings._profile = profile
    return settings


_SECRET_KEY_WORDS = ("key", "secret", "token", "password", "credential")
SECRET_PREFIX = "secret://"


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(dotted.path, string)`` for every string inside a dumped settings tree."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{path}[{index}]")


def redacted_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration with literal secrets masked (references are shown)."""

    def mask(value: Any, sensitive: bool) -> Any:
        if isinstance(value, Mapping):
            return {
                k: mask(v, sensitive or any(w in str(k).lower() for w in _SECRET_KEY_WORDS))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [mask(v, sensitive) for v in value]
        if isinstance(value, str):
            if value.startswith(SECRET_PREFIX):
                return value
            if sensitive and value:
                return "***"
            return _mask_url_password(value)
        return value

    dumped = settings.model_dump(mode="json", by_alias=False)
    result: dict[str, Any] = mask(dumped, False)
    return result


def _mask_url_password(value: str) -> str:
    if "://" not in value or "@" not in value:
        return value
    scheme, _, rest = value.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return value
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
