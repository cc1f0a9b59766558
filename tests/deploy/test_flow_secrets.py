"""Flows travel with their secrets: startup resolves the references flows use, `aiservice
check` lists them and every deploy target binds them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from aiservice.config import Settings, load_settings
from aiservice.deploy import render
from aiservice.errors import ConfigError
from aiservice.runtime import Runtime, StartupError
from aiservice.secrets.base import (
    SecretError,
    SecretResolver,
    find_references,
    injected_variable,
)

from .test_render import docs

FLOW = {
    "steps": {
        "score": {
            "url": "https://fn.example/score",
            "headers": {"X-Api-Key": "${secrets.env.SCORE_KEY}"},
            "auth": {"type": "bearer", "token": "secret://aws-sm/prod/fn#token"},
        }
    },
    "output": {"score": "${steps.score.output}"},
    "webhook": {"url": "https://hooks.example/done", "secret": "secret://gcp-sm/hook-key"},
}
REFS = {"secret://env/SCORE_KEY", "secret://aws-sm/prod/fn#token", "secret://gcp-sm/hook-key"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "score.yaml").write_text(yaml.safe_dump(FLOW))
    config = {"flows_dir": "flows", "deploy": {"gcp_project": "acme"}}
    (tmp_path / "aiservice.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def settings_of(project: Path, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(
        project / "aiservice.yaml", environ=environ or {}, dotenv_file=None, cwd=project
    )


def test_flow_file_references_are_known_to_the_resolver(project: Path) -> None:
    found = dict((ref, where) for where, ref in find_references(settings_of(project)))
    assert set(found) == REFS
    assert found["secret://aws-sm/prod/fn#token"] == "flows.score.steps.score.auth.token"
    assert found["secret://gcp-sm/hook-key"] == "flows.score.webhook.secret"


def test_startup_fails_fast_naming_a_missing_flow_secret(project: Path) -> None:
    runtime = Runtime(settings_of(project))
    with pytest.raises(StartupError) as exc:
        asyncio.run(runtime.start([]))
    assert "secret://env/SCORE_KEY" in str(exc.value)


def test_startup_resolves_flow_secrets_injected_by_the_platform(project: Path) -> None:
    environ = {
        "SCORE_KEY": "k-1",
        "SECRET__AWS_SM__PROD_FN_TOKEN": "t-1",
        "SECRET__GCP_SM__HOOK_KEY": "whsec-1",
    }
    runtime = Runtime(settings_of(project, environ))
    asyncio.run(runtime.start([]))
    assert runtime.secrets.cached("secret://gcp-sm/hook-key") == "whsec-1"
    assert runtime.secrets.cached("secret://aws-sm/prod/fn#token") == "t-1"


def test_injected_variable_wins_over_the_source(tmp_path: Path) -> None:
    assert injected_variable("secret://gcp-sm/hook-key") == "SECRET__GCP_SM__HOOK_KEY"
    environ = {"SECRET__NOSUCH__X_Y": "v"}
    settings = load_settings(None, environ=environ, dotenv_file=None, cwd=tmp_path)
    # No source named "nosuch" exists: the value can only come from the variable.
    assert asyncio.run(SecretResolver(settings).resolve("secret://nosuch/x-y")) == "v"
    with pytest.raises(SecretError, match="nosuch"):
        asyncio.run(SecretResolver(Settings()).resolve("secret://nosuch/x-y"))


def test_check_lists_flow_secrets(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name in list(os.environ):
        if name.startswith("AISERVICE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SCORE_KEY", "k-1")
    monkeypatch.chdir(project)
    assert main(["check", "-c", str(project / "aiservice.yaml")]) == 1
    out = capsys.readouterr().out
    rows = {
        line.split()[1]: line.split()[2] for line in out.splitlines() if line.startswith("secret ")
    }
    assert rows["secret://env/SCORE_KEY"] == "ok"
    assert rows["secret://gcp-sm/hook-key"] == "fail"
    assert rows["secret://aws-sm/prod/fn#token"] == "fail"


def test_every_target_binds_flow_secrets_and_packages_the_folder(project: Path) -> None:
    settings = settings_of(project)
    sls = docs(render(settings, "lambda")["serverless.yml"])[0]
    assert sls["custom"] == {"flowsDir": "flows"}
    assert sls["provider"]["environment"]["SCORE_KEY"].startswith("${ssm:")
    grants = {s["Action"][0]: s["Resource"] for s in sls["provider"]["iam"]["role"]["statements"]}
    (arn,) = grants["secretsmanager:GetSecretValue"]
    assert arn["Fn::Join"][1][-1] == ":secret:prod/fn-??????"

    service = docs(render(settings, "cloudrun")["gcp/service.yaml"])[0]
    env = {e["name"]: e for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SECRET__GCP_SM__HOOK_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "hook-key",
        "key": "latest",
    }
    assert env["SCORE_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "score-key"

    script = render(settings, "function")["gcp/deploy-function.sh"]
    assert "--set-secrets=SCORE_KEY=score-key:latest,SECRET__GCP_SM__HOOK_KEY=hook-key:latest" in (
        script
    )
    assert 'cp -r flows/. "$SRC/flows/"' in script

    k8s = render(settings, "k8s")["k8s/deployment.yaml"]
    (container,) = docs(k8s)[0]["spec"]["template"]["spec"]["containers"]
    assert {
        "name": "SCORE_KEY",
        "valueFrom": {"secretKeyRef": {"name": "aiservice-secrets", "key": "SCORE_KEY"}},
    } in container["env"]
    assert "secret://aws-sm/prod/fn#token" in k8s  # resolved by the app (IRSA)

    compose = docs(render(settings, "compose")["docker-compose.yml"])[0]
    assert compose["services"]["app"]["environment"]["SCORE_KEY"].startswith("${SCORE_KEY:?")


def test_flows_dir_outside_the_project_cannot_be_packaged(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "aiservice.yaml").write_text("flows_dir: /etc/flows\n")
    settings = load_settings(
        tmp_path / "aiservice.yaml", environ={}, dotenv_file=None, cwd=tmp_path
    )
    with pytest.raises(ConfigError) as exc:
        render(settings, "lambda")
    assert exc.value.key == "flows_dir"
    assert main(["render", "-t", "function", "-c", str(tmp_path / "aiservice.yaml")]) == 2
