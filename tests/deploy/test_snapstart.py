"""deploy.lambda_snapstart: rendered for Serverless v3, packaged, linted, invoked by alias."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aiservice.cli import main
from aiservice.config import Settings
from aiservice.deploy import render

from .test_render import docs
from .test_validate import package, serverless  # noqa: F401  (the fixture)

SNAPSTART = {"deploy": {"lambda_snapstart": True}}


def functions(settings: Settings) -> dict[str, Any]:
    sls: dict[str, Any] = docs(render(settings, "lambda")["serverless.yml"])[0]
    return sls["functions"]  # type: ignore[no-any-return]


def test_snapstart_is_off_by_default() -> None:
    assert Settings().deploy.lambda_snapstart is False
    assert all("snapStart" not in f for f in functions(Settings()).values())


def test_snapstart_goes_on_the_python_handler_functions_only() -> None:
    rendered = functions(Settings(**SNAPSTART))
    assert rendered["api"]["snapStart"] is True
    assert rendered["worker"]["snapStart"] is True
    assert "snapStart" not in rendered["stream"]  # uvicorn behind the Web Adapter


def test_snapstart_on_python311_is_a_config_error(tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "aiservice.yaml"
    config.write_text("deploy:\n  lambda_snapstart: true\n  lambda_runtime: python3.11\n")
    assert main(["render", "-t", "lambda", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "deploy.lambda_snapstart" in err and "aiservice.yaml" in err


def _targets(value: Any) -> str:
    return json.dumps(value)


@pytest.mark.slow
def test_snapstart_packages_lints_and_every_event_targets_the_alias(
    serverless: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = Settings(
        **SNAPSTART,
        aws_lambda={"events": {"nightly": {"schedule": "rate(1 day)", "path": "/x"}}},
    )
    template = package(serverless, tmp_path, render(settings, "lambda")["serverless.yml"])
    resources = template["Resources"]
    snap = {
        k: v["Properties"].get("SnapStart")
        for k, v in resources.items()
        if v["Type"] == "AWS::Lambda::Function"
    }
    assert snap == {
        "ApiLambdaFunction": {"ApplyOn": "PublishedVersions"},
        "WorkerLambdaFunction": {"ApplyOn": "PublishedVersions"},
        "StreamLambdaFunction": None,
    }
    aliases = {
        v["Properties"]["FunctionName"]["Ref"]: v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::Alias"
    }
    assert set(aliases) == {"ApiLambdaFunction", "WorkerLambdaFunction"}
    for function, alias in aliases.items():
        version = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert resources[version]["Type"] == "AWS::Lambda::Version"
        assert resources[version]["Properties"]["FunctionName"] == {"Ref": function}
    # Invoking the unpublished $LATEST would bypass the snapshot: every source uses the alias.
    alias_arn = {"Fn::Join": [":", [{"Fn::GetAtt": ["ApiLambdaFunction", "Arn"]}, "snapstart"]]}
    worker_alias = {
        "Fn::Join": [":", [{"Fn::GetAtt": ["WorkerLambdaFunction", "Arn"]}, "snapstart"]]
    }
    by_type: dict[str, list[dict[str, Any]]] = {}
    for v in resources.values():
        by_type.setdefault(v["Type"], []).append(v["Properties"])
    (integration,) = by_type["AWS::ApiGatewayV2::Integration"]
    assert integration["IntegrationUri"] == alias_arn
    (mapping,) = by_type["AWS::Lambda::EventSourceMapping"]
    assert mapping["FunctionName"] == worker_alias
    (rule,) = by_type["AWS::Events::Rule"]
    assert _targets(worker_alias) in _targets(rule["Targets"])
    permissions = [p["FunctionName"] for p in by_type["AWS::Lambda::Permission"]]
    assert alias_arn in permissions and worker_alias in permissions
