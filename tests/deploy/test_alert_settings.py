"""``alerts:``: each alert's threshold and ``for`` reach the rendered rule file (promtool
checks the renderings in test_monitoring.py); bad values stop the CLI naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from aiservice.config import Settings, load_settings, redacted_dump
from aiservice.config.alerts import ALERT_DEFAULTS, alerts_of
from aiservice.deploy import render
from aiservice.errors import ConfigError

from .conftest import CUSTOM_ALERTS, REPO

RULE_FILE = "prometheus/aiservice-rules.yaml"


def rules(settings: Settings) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(render(settings, "prometheus")[RULE_FILE])["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


# The table of docs/observability.md ("The alerts"): the end of each expr, `for`, severity.
DOCUMENTED = {
    "AIServiceHighErrorRate": ("> 0.05", "10m", "critical"),
    "AIServiceHighLatencyP99": ("> 30", "15m", "warning"),
    "AIServiceUpstreamLatencyP99": ("> 60", "15m", "warning"),
    "AIServiceDailyCostHigh": ("> 100", "15m", "warning"),
    "AIServiceCacheCold": ("> 0.1", "30m", "warning"),
    "AIServiceDeploymentCooledDown": ("== 1", "5m", "warning"),
    "AIServiceModelUnavailable": ("== 1", "2m", "critical"),
    "AIServiceManyFallbacks": ("> 30", "15m", "warning"),
}


def test_the_defaults_are_the_documented_rules() -> None:
    rendered = rules(Settings())
    assert set(rendered) == set(DOCUMENTED)
    for name, (tail, duration, severity) in DOCUMENTED.items():
        rule = rendered[name]
        assert rule["expr"].rstrip().endswith(tail), name
        assert (rule["for"], rule["labels"]["severity"]) == (duration, severity), name
    assert "< 0.01\n)" in rendered["AIServiceCacheCold"]["expr"]
    assert "for an hour" in rendered["AIServiceCacheCold"]["annotations"]["description"]


def test_every_setting_reaches_its_rule_and_its_words() -> None:
    rendered = rules(Settings(alerts=CUSTOM_ALERTS))
    error = rendered["AIServiceHighErrorRate"]
    assert error["expr"].rstrip().endswith("> 0.025") and error["for"] == "1h30m"
    assert error["annotations"]["description"].startswith(
        "More than 2.5% of HTTP requests answered 5xx for 90 minutes."
    )
    latency = rendered["AIServiceHighLatencyP99"]
    assert latency["expr"].rstrip().endswith("> 12.5") and latency["for"] == "20m"
    assert "above 12.5s for 20 minutes" in latency["annotations"]["description"]
    upstream = rendered["AIServiceUpstreamLatencyP99"]
    assert upstream["expr"].rstrip().endswith("> 90") and upstream["for"] == "30s"
    assert (
        "over 90s at the 99th percentile for 30 seconds" in (upstream["annotations"]["description"])
    )
    cost = rendered["AIServiceDailyCostHigh"]
    assert cost["expr"].rstrip().endswith("> 2500") and cost["for"] == "1h"
    assert "above 2500 USD" in cost["annotations"]["description"]
    cold = rendered["AIServiceCacheCold"]
    assert "< 0.2\n)" in cold["expr"] and cold["expr"].rstrip().endswith("> 0.005")
    assert cold["for"] == "1h"
    assert "under 20% of lookups for 90 minutes" in cold["annotations"]["description"]
    cooled = rendered["AIServiceDeploymentCooledDown"]
    assert cooled["for"] == "10m" and "for 10 minutes" in cooled["annotations"]["description"]
    assert rendered["AIServiceModelUnavailable"]["for"] == "1m"
    fallbacks = rendered["AIServiceManyFallbacks"]
    assert fallbacks["expr"].rstrip().endswith("> 0") and fallbacks["for"] == "5m"


def test_the_prometheus_rule_carries_the_same_settings() -> None:
    settings = Settings(alerts={"daily_cost_high": {"threshold": 250}})
    rule_object = yaml.safe_load(render(settings, "k8s")["k8s/monitoring/prometheusrule.yaml"])
    assert (
        rule_object["spec"]["groups"]
        == yaml.safe_load(render(settings, "prometheus")[RULE_FILE])["groups"]
    )
    (cost,) = (
        rule
        for rule in rule_object["spec"]["groups"][0]["rules"]
        if rule["alert"] == "AIServiceDailyCostHigh"
    )
    assert cost["expr"].rstrip().endswith("> 250")


def test_a_partial_override_keeps_the_alerts_own_defaults(tmp_path: Path) -> None:
    """`for` of daily_cost_high stays 15m (not the model's 5m) when only the threshold is set,
    from a file or from variables."""
    path = tmp_path / "aiservice.yaml"
    path.write_text("alerts:\n  daily_cost_high:\n    threshold: 250\n")
    from_file = load_settings(path, environ={}, dotenv_file=None, cwd=tmp_path)
    assert alerts_of(from_file).daily_cost_high.threshold == 250
    assert alerts_of(from_file).daily_cost_high.for_ == "15m"
    environ = {
        "AISERVICE_ALERTS__CACHE_COLD__FOR": "45m",
        "AISERVICE_ALERTS__HIGH_ERROR_RATE__THRESHOLD": "0.1",
    }
    from_env = load_settings(None, environ=environ, dotenv_file=None, cwd=tmp_path)
    assert alerts_of(from_env).cache_cold.for_ == "45m"
    assert alerts_of(from_env).cache_cold.threshold == 0.01
    assert alerts_of(from_env).cache_cold.min_lookups_per_second == 0.1
    assert alerts_of(from_env).high_error_rate.threshold == 0.1
    assert alerts_of(from_env).high_error_rate.for_ == "10m"


def test_config_show_prints_the_alerts_as_a_loadable_file(tmp_path: Path) -> None:
    shown = redacted_dump(Settings(alerts={"many_fallbacks": {"for": "1h"}}))["alerts"]
    assert shown["many_fallbacks"]["for"] == "1h"
    assert shown["deployment_cooled_down"]["for"] == "5m"
    path = tmp_path / "shown.yaml"
    path.write_text(yaml.safe_dump({"alerts": shown}))
    again = load_settings(path, environ={}, dotenv_file=None, cwd=tmp_path)
    assert again.alerts == Settings(alerts={"many_fallbacks": {"for": "1h"}}).alerts
    # Unset, the section prints as null, which reads back as the shipped rules.
    assert redacted_dump(Settings())["alerts"] is None
    path.write_text("alerts: null\n")
    unset = load_settings(path, environ={}, dotenv_file=None, cwd=tmp_path)
    assert render(unset, "prometheus") == render(Settings(), "prometheus")


@pytest.mark.parametrize(
    ("alerts", "key", "message"),
    [
        ({"high_error_rate": {"threshold": 1.5}}, "alerts.high_error_rate", "at most 1"),
        ({"cache_cold": {"threshold": 2}}, "alerts.cache_cold", "at most 1"),
        ({"daily_cost_high": {"threshold": -1}}, "alerts.daily_cost_high.threshold", "0"),
        ({"many_fallbacks": {"for": "ten minutes"}}, "alerts.many_fallbacks.for", "pattern"),
        ({"model_unavailable": {"threshold": 3}}, "alerts.model_unavailable", "unknown key"),
        ({"high_latency_p99": {"threshold": None}}, "alerts.high_latency_p99", "must be set"),
        ({"high_error_rat": {"threshold": 0.1}}, "alerts.high_error_rat", "unknown key"),
    ],
)
def test_an_invalid_alert_setting_exits_2_naming_file_and_key(
    alerts: dict[str, Any], key: str, message: str, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "aiservice.yaml"
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    assert main(["render", "-t", "prometheus", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {key}: " in err and message in err, err


def test_an_invalid_alert_variable_names_the_variable(tmp_path: Path) -> None:
    environ = {"AISERVICE_ALERTS__HIGH_LATENCY_P99__THRESHOLD": "soon"}
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ=environ, dotenv_file=None, cwd=tmp_path)
    assert (
        "environment variable AISERVICE_ALERTS__HIGH_LATENCY_P99__THRESHOLD: "
        "alerts.high_latency_p99.threshold: Input should be a valid number"
    ) in str(raised.value)


LEAVES = [(name, key) for name, taken in ALERT_DEFAULTS.items() for key in taken]


@pytest.mark.parametrize("garbage", ["soon", "-1", "{", "1h 30m"])
def test_garbage_in_any_alert_variable_names_variable_and_key(garbage: str, tmp_path: Path) -> None:
    for name, key in LEAVES:
        var = f"AISERVICE_ALERTS__{name.upper()}__{key.upper()}"
        with pytest.raises(ConfigError) as raised:
            load_settings(None, environ={var: garbage}, dotenv_file=None, cwd=tmp_path)
        message = str(raised.value)
        assert var in message and f"alerts.{name}.{key}" in message, message


def test_an_unset_section_imports_nothing_of_it() -> None:
    """Cold start: the section's two classes cost ~4 M instructions, so a configuration
    without `alerts:` must not import them."""
    code = (
        "import sys\n"
        "from aiservice.config import load_settings\n"
        "s = load_settings(environ={}, dotenv_file=None)\n"
        "assert s.alerts is None\n"
        "print('aiservice.config.alerts' in sys.modules)\n"
        "load_settings(environ={'AISERVICE_ALERTS__CACHE_COLD__FOR': '1h'}, dotenv_file=None)\n"
        "print('aiservice.config.alerts' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src")},
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["False", "True"]
