"""Settings: built-in defaults < YAML file < profile overlay < ``.env`` < environment.

* :mod:`.sections`: one model per top-level key (unknown keys are errors).
* :mod:`.settings`: the root :class:`Settings` model.
* :mod:`.loader`: :func:`load_settings`, the only code that reads the process environment.
* :mod:`.envvars`: environment variables decoded by the type of the setting they name.
* :mod:`.redact`: secret-reference walking and the printable (masked) dump.
"""

from __future__ import annotations

from ..errors import ConfigError
from .loader import DEFAULT_CONFIG_FILE, load_settings
from .redact import SECRET_PREFIX, iter_strings, redacted_dump, settings_strings
from .sections import (
    AuthKeySettings,
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
    RateLimitValues,
    SecretsSettings,
    ServerSettings,
    ServiceSettings,
    VertexSettings,
    WebhookSettings,
)
from .settings import ENV_PREFIX, Settings
from .targets import AwsLambdaSettings, DeploySettings, LambdaEventSettings

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "SECRET_PREFIX",
    "AuthKeySettings",
    "AuthSettings",
    "AwsLambdaSettings",
    "CacheSettings",
    "ConfigError",
    "CorsSettings",
    "DeploySettings",
    "DeploymentSettings",
    "EmbeddingsSettings",
    "LambdaEventSettings",
    "LimitsSettings",
    "LoggingSettings",
    "MetricsSettings",
    "OrchestratorSettings",
    "PriceSettings",
    "ProviderSettings",
    "RateLimitValues",
    "SecretsSettings",
    "ServerSettings",
    "ServiceSettings",
    "Settings",
    "VertexSettings",
    "WebhookSettings",
    "iter_strings",
    "load_settings",
    "redacted_dump",
    "settings_strings",
]
