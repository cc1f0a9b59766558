"""``deploy.k8s_monitoring``: the PrometheusRule and the Grafana dashboard ConfigMap are the
rendered rule file and the shipped dashboard, wrapped; each checked by the tool that knows
its format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.config import Settings
from aiservice.deploy import render, write
from aiservice.deploy.monitoring import dashboard_json, rule_groups

from .conftest import CUSTOM_ALERTS, REPO

ASSETS = REPO / "src" / "aiservice" / "deploy" / "assets"
RULES_FILE = REPO / "prometheus" / "aiservice-rules.yaml"
DASHBOARD_FILE = ASSETS / "grafana" / "aiservice.json"
RULE = "k8s/monitoring/prometheusrule.yaml"
DASHBOARD = "k8s/monitoring/grafana-dashboard.yaml"
POD_MONITOR = "k8s/monitoring/podmonitor.yaml"
BIN = Path(sys.executable).parent
SEVERITIES = {"warning", "critical"}


def doc(text: str) -> Any:
    return yaml.safe_load(text)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # scripts/test.sh installs it (Debian package "prometheus")
        pytest.skip("promtool is not installed: apt-get install prometheus")
    return path


def check_rule_structure(rule_object: dict[str, Any]) -> None:
    """What the PrometheusRule CRD requires, checked here because no schema is bundled."""
    assert rule_object["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule_object["kind"] == "PrometheusRule"
    meta = rule_object["metadata"]
    assert isinstance(meta["name"], str) and isinstance(meta["namespace"], str)
    assert set(rule_object["spec"]) == {"groups"}
    for group in rule_object["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "partial_response_strategy"}
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
            assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())


def test_monitoring_is_rendered_by_default_and_can_be_turned_off() -> None:
    files = render(Settings(), "k8s")
    assert {RULE, DASHBOARD, POD_MONITOR} <= set(files)
    off = render(Settings(deploy={"k8s_monitoring": False}), "k8s")
    assert not any(path.startswith("k8s/monitoring/") for path in off)
    # Out of `kubectl apply -f k8s/`: a missing CRD must not stop the app's deploy.
    assert all(Path(path).parent.name == "k8s" for path in off)


def test_the_rule_object_wraps_the_rule_file() -> None:
    settings = Settings(
        service={"name": "AI gw"},
        deploy={"namespace": "ai", "k8s_monitoring_labels": {"release": "kps"}},
    )
    rule_object = doc(render(settings, "k8s")[RULE])
    check_rule_structure(rule_object)
    assert rule_object["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert rule_object["metadata"]["namespace"] == "ai"
    assert rule_object["metadata"]["name"] == "ai-gw"
    assert rule_object["metadata"]["labels"]["release"] == "kps"


def test_the_pod_monitor_scrapes_the_api_pods_named_port() -> None:
    files = render(Settings(deploy={"k8s_monitoring_labels": {"release": "kps"}}), "k8s")
    monitor = doc(files[POD_MONITOR])
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    pod = doc(files["k8s/deployment.yaml"])["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = pod["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]}
    assert endpoint["path"] == "/metrics"
    # A scrape without a key would get 401: no PodMonitor then (the user brings one).
    guarded = render(Settings(metrics={"require_auth": True}), "k8s")
    assert POD_MONITOR not in guarded and RULE in guarded


def test_the_dashboard_config_map_carries_the_shipped_json_for_the_sidecar() -> None:
    config_map = doc(render(Settings(deploy={"namespace": "ai"}), "k8s")[DASHBOARD])
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "ai"
    (text,) = config_map["data"].values()
    assert text == DASHBOARD_FILE.read_text() == dashboard_json()
    # kubectl apply keeps the object in an annotation limited to 256 KiB.
    assert len(text.encode()) < 200_000


def test_every_alert_has_for_severity_summary_and_description() -> None:
    rules = [rule for group in rule_groups(Settings()) for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {
        "AIServiceHighErrorRate",
        "AIServiceHighLatencyP99",
        "AIServiceDailyCostHigh",
        "AIServiceCacheCold",
        "AIServiceDeploymentCooledDown",
        "AIServiceModelUnavailable",
        "AIServiceManyFallbacks",
    } <= names
    for rule in rules:
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("alerts", [{}, CUSTOM_ALERTS], ids=["defaults", "custom"])
def test_promtool_accepts_the_rendered_rule_file_and_spec(
    alerts: dict[str, Any], tmp_path: Path
) -> None:
    tool = promtool()
    settings = Settings(alerts=alerts)
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(render(settings, "prometheus")["prometheus/aiservice-rules.yaml"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc(render(settings, "k8s")[RULE])["spec"]))
    result = subprocess.run(
        [tool, "check", "rules", str(rule_file), str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(rule_groups(settings)[0]["rules"])
    assert result.stdout.count(f"SUCCESS: {count} rules found") == 2


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a bad expression is reported."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES_FILE.read_text().replace("> 0.05", "> > 0.05", 1))
    result = subprocess.run(
        [promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


@pytest.mark.slow
def test_kubernetes_validate_checks_the_config_map_but_has_no_prometheus_rule_schema(
    tmp_path: Path,
) -> None:
    """kubernetes-validate bundles core schemas only: it validates the dashboard ConfigMap
    strictly and only warns about the CRDs (checked structurally above, rules by promtool)."""
    paths = write(render(Settings(), "k8s"), tmp_path)
    monitoring = sorted(str(p) for p in paths if p.parent.name == "monitoring")
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *monitoring],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "passed for resource configmap/aiservice-dashboard" in out
    assert "Couldn't find schema for kind PrometheusRule" in out
    assert "Couldn't find schema for kind PodMonitor" in out


def test_dashboard_is_importable_into_grafana_10() -> None:
    """The import contract: a Prometheus datasource variable every query uses, unique panel
    ids, panels inside the 24-column grid."""
    board = json.loads(DASHBOARD_FILE.read_text())
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "__inputs" not in board  # nothing to map on import; the variable picks the source
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    queries = [p for p in board["panels"] if p["type"] != "row"]
    assert queries
    for panel in queries:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in target["expr"], panel["title"]
