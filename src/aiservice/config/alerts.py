"""The ``alerts`` section: thresholds and ``for:`` durations of the Prometheus alert rules.

Read by ``aiservice render`` only (the ``prometheus`` target's rule file and the k8s
``PrometheusRule``, :mod:`aiservice.deploy.alerts`); the service itself never looks at it,
and this module is imported only when a configuration sets the section (:mod:`.lazy`: the
two classes below cost ~4 M instructions at import, about the whole cold-start margin).

One model serves every alert. An alert's defaults are in :data:`ALERT_DEFAULTS`: a
partial override (``{threshold: 250}``) is merged over them, and keys the alert does not
take are rejected.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from .factories import factory
from .sections import Section

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["ALERT_DEFAULTS", "RATIO_ALERTS", "AlertSettings", "AlertsSettings", "alerts_of"]

# Prometheus durations: units from largest to smallest, each at most once ("1h30m").
DURATION = r"^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"

ALERT_DEFAULTS: dict[str, dict[str, Any]] = {
    "high_error_rate": {"threshold": 0.05, "for": "10m"},
    "high_latency_p99": {"threshold": 30.0, "for": "15m"},
    "upstream_latency_p99": {"threshold": 60.0, "for": "15m"},
    "daily_cost_high": {"threshold": 100.0, "for": "15m"},
    "cache_cold": {"threshold": 0.01, "min_lookups_per_second": 0.1, "for": "30m"},
    "deployment_cooled_down": {"for": "5m"},
    "model_unavailable": {"for": "2m"},
    "many_fallbacks": {"threshold": 30.0, "for": "15m"},
}
"""Each alert's keys and defaults (the rules as shipped). Units of ``threshold``: a ratio
(0..1) for ``high_error_rate`` and ``cache_cold``, seconds for the latencies, USD over 24 h
for ``daily_cost_high``, fallbacks of one model in 15 minutes for ``many_fallbacks``."""

RATIO_ALERTS = frozenset({"high_error_rate", "cache_cold"})


class AlertSettings(Section):
    """One alert; which of these keys an alert takes is in :data:`ALERT_DEFAULTS`."""

    threshold: float | None = Field(None, ge=0)
    min_lookups_per_second: float | None = Field(None, ge=0)
    for_: str = Field(
        "5m",
        min_length=2,
        pattern=DURATION,
        validation_alias=AliasChoices("for", "for_"),
        serialization_alias="for",
    )
    """How long the condition must hold before the alert fires (``10m``, ``1h30m``)."""


def _default(name: str) -> Any:
    return factory(lambda: AlertSettings.model_construct(**ALERT_DEFAULTS[name]))


class AlertsSettings(Section):
    high_error_rate: AlertSettings = Field(default_factory=_default("high_error_rate"))
    high_latency_p99: AlertSettings = Field(default_factory=_default("high_latency_p99"))
    upstream_latency_p99: AlertSettings = Field(default_factory=_default("upstream_latency_p99"))
    daily_cost_high: AlertSettings = Field(default_factory=_default("daily_cost_high"))
    cache_cold: AlertSettings = Field(default_factory=_default("cache_cold"))
    deployment_cooled_down: AlertSettings = Field(
        default_factory=_default("deployment_cooled_down")
    )
    model_unavailable: AlertSettings = Field(default_factory=_default("model_unavailable"))
    many_fallbacks: AlertSettings = Field(default_factory=_default("many_fallbacks"))

    @field_validator(*ALERT_DEFAULTS, mode="before")
    @classmethod
    def _over_defaults(cls, value: object, info: ValidationInfo) -> object:
        # Without the merge, an override of the threshold alone would reset `for` to the
        # model's default instead of this alert's.
        if not isinstance(value, Mapping):
            return value
        defaults = ALERT_DEFAULTS[str(info.field_name)]
        given = {"for" if key == "for_" else str(key): item for key, item in value.items()}
        # `null` is what `aiservice config show` prints for the keys an alert does not take.
        unknown = sorted(k for k, v in given.items() if k not in defaults and v is not None)
        if unknown:
            keys = ", ".join(f"alerts.{info.field_name}.{key}" for key in unknown)
            raise ValueError(f"unknown key {keys} (this alert takes {', '.join(defaults)})")
        return {**defaults, **given}

    @field_validator(*ALERT_DEFAULTS)
    @classmethod
    def _in_range(cls, value: AlertSettings, info: ValidationInfo) -> AlertSettings:
        # The messages name the whole key: the error's location stops at the alert.
        name = str(info.field_name)
        taken = ALERT_DEFAULTS[name]
        for key in ("threshold", "min_lookups_per_second"):
            if key in taken and getattr(value, key) is None:
                raise ValueError(f"alerts.{name}.{key} must be set")
        if name in RATIO_ALERTS and value.threshold is not None and value.threshold > 1:
            raise ValueError(f"alerts.{name}.threshold is a ratio: at most 1")
        return value


def alerts_of(settings: "Settings") -> AlertsSettings:
    """The configured section, or every alert at its defaults when it is unset."""
    return settings.alerts if settings.alerts is not None else AlertsSettings.model_construct()
