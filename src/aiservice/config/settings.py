"""``Settings``: the root model, and the pydantic-settings sources that feed it.

The sources carry data handed over by :func:`~aiservice.config.loader.load_settings`; this
module reads nothing from the process itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from pydantic import Field, PrivateAttr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .responses import ResponsesSettings
from .sections import (
    AuthSettings,
    CacheSettings,
    CorsSettings,
    DeploymentSettings,
    EmbeddingsSettings,
    LimitsSettings,
    LoggingSettings,
    MetricsSettings,
    OrchestratorSettings,
    PriceSettings,
    ProviderSettings,
    SecretsSettings,
    ServerSettings,
    ServiceSettings,
    default_models,
    default_providers,
)
from .targets import AwsLambdaSettings, DeploySettings
from .tracing import TracingSettings
from .vectors import VectorsSettings

ENV_PREFIX = "AISERVICE_"


# The merged data (files, then .env and environment decoded by .envvars) of the current
# load_settings() call; pydantic-settings builds sources from a classmethod, so the data
# travels through a context variable.
_layers: ContextVar[tuple[dict[str, Any], ...]] = ContextVar("_layers", default=())


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
    providers: dict[str, ProviderSettings] = Field(default_factory=default_providers)
    models: dict[str, list[DeploymentSettings]] = Field(default_factory=default_models)
    pricing: dict[str, PriceSettings] = Field(default_factory=dict)
    embeddings: EmbeddingsSettings = Field(default_factory=EmbeddingsSettings)
    orchestrator: OrchestratorSettings = Field(default_factory=OrchestratorSettings)
    flows: dict[str, Any] = Field(default_factory=dict)
    flows_dir: str | None = None
    functions: dict[str, Any] = Field(default_factory=dict)
    """Free-form values (ML function URLs, ...) that flows reference as ``settings.functions``."""
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    aws_lambda: AwsLambdaSettings = Field(default_factory=AwsLambdaSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    vectors: VectorsSettings = Field(default_factory=VectorsSettings)

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
        return (init_settings, *(_DictSource(settings_cls, d) for d in reversed(_layers.get())))


class _DictSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)
