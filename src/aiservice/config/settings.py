"""``Settings``: the root model, and :func:`validate_settings`, which builds it from data.

This module reads nothing from the process itself: :func:`~aiservice.config.loader.load_settings`
hands over the merged data of files and environment.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from .factories import factory, new_dict
from .lazy import lazy_section
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
    defaults,
)
from .targets import AwsLambdaSettings, DeploySettings
from .tracing import TracingSettings
from .vectors import VectorsSettings

if TYPE_CHECKING:
    from .alerts import AlertsSettings
else:
    AlertsSettings = lazy_section("aiservice.config.alerts:AlertsSettings")

ENV_PREFIX = "AISERVICE_"


class Settings(BaseModel):
    """The whole configuration. Build it with :func:`load_settings` (or directly in tests).

    A plain model: :func:`~aiservice.config.loader.load_settings` reads the files and the
    environment itself, so nothing of pydantic-settings' sources was used (and importing
    it cost a cold start ~16 ms). Constructed directly, it reads no environment.
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        validate_default=True,  # as pydantic-settings' BaseSettings did
        # Built when a test or tool constructs Settings directly; load_settings does not
        # need it (validate_settings).
        defer_build=True,
    )

    service: ServiceSettings = Field(default_factory=defaults(ServiceSettings))
    server: ServerSettings = Field(default_factory=defaults(ServerSettings))
    logging: LoggingSettings = Field(default_factory=defaults(LoggingSettings))
    auth: AuthSettings = Field(default_factory=defaults(AuthSettings))
    cors: CorsSettings = Field(default_factory=defaults(CorsSettings))
    limits: LimitsSettings = Field(default_factory=defaults(LimitsSettings))
    cache: CacheSettings = Field(default_factory=defaults(CacheSettings))
    providers: dict[str, ProviderSettings] = Field(default_factory=factory(default_providers))
    models: dict[str, list[DeploymentSettings]] = Field(default_factory=factory(default_models))
    pricing: dict[str, PriceSettings] = Field(default_factory=new_dict)
    embeddings: EmbeddingsSettings = Field(default_factory=defaults(EmbeddingsSettings))
    orchestrator: OrchestratorSettings = Field(default_factory=defaults(OrchestratorSettings))
    flows: dict[str, Any] = Field(default_factory=new_dict)
    flows_dir: str | None = None
    functions: dict[str, Any] = Field(default_factory=new_dict)
    """Free-form values (ML function URLs, ...) that flows reference as ``settings.functions``."""
    secrets: SecretsSettings = Field(default_factory=defaults(SecretsSettings))
    metrics: MetricsSettings = Field(default_factory=defaults(MetricsSettings))
    tracing: TracingSettings = Field(default_factory=defaults(TracingSettings))
    alerts: AlertsSettings | None = None
    """Thresholds of the alert rules ``aiservice render`` writes; unset: the shipped rules
    (read through :func:`aiservice.config.alerts.alerts_of`)."""
    deploy: DeploySettings = Field(default_factory=defaults(DeploySettings))
    aws_lambda: AwsLambdaSettings = Field(default_factory=defaults(AwsLambdaSettings))
    responses: ResponsesSettings = Field(default_factory=defaults(ResponsesSettings))
    vectors: VectorsSettings = Field(default_factory=defaults(VectorsSettings))

    _environ: Mapping[str, str] = PrivateAttr(default_factory=new_dict)
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


class SettingsInvalid(ValueError):
    """The data does not validate: pydantic's error details, ``loc`` from the root."""

    def __init__(self, errors: list[ErrorDetails]) -> None:
        super().__init__(f"{len(errors)} invalid settings")
        self.errors = errors


_adapters: dict[str, TypeAdapter[Any]] = {}


def _validate_field(name: str, value: Any) -> Any:
    annotation: Any = Settings.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_validate(value)
    adapter = _adapters.get(name)
    if adapter is None:
        adapter = _adapters[name] = TypeAdapter(annotation)
    return adapter.validate_python(value)


def validate_settings(data: Mapping[str, Any]) -> Settings:
    """``Settings`` from merged data, as ``Settings(**data)`` would build it.

    Each configured section is validated by its own model; every other one is its
    defaults, valid by declaration and built without validation. A validator costs
    milliseconds to build per model, and a deployment configures a few of some thirty:
    validating the root would build them all at every cold start. The errors are those of
    the root model, in its order (fields as declared, then unknown keys).
    """
    values: dict[str, Any] = {}
    errors: list[ErrorDetails] = []
    for name in Settings.model_fields:
        if name not in data:
            continue
        try:
            values[name] = _validate_field(name, data[name])
        except ValidationError as exc:
            errors += [{**e, "loc": (name, *e["loc"])} for e in exc.errors(include_url=False)]
    for name, value in data.items():
        if name not in Settings.model_fields:
            errors.append(
                {
                    "type": "extra_forbidden",
                    "loc": (name,),
                    "msg": "Extra inputs are not permitted",
                    "input": value,
                }
            )
    if errors:
        raise SettingsInvalid(errors)
    return Settings.model_construct(_fields_set=set(values), **values)
