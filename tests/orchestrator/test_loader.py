"""Load-time validation (errors name flow, step and field), flows_dir, CLI and readiness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from aiservice.orchestrator.loader import load_flows

from ..conftest import MakeSettings
from .conftest import FlowSettings, orchestrator_app

URL = "https://fn.example/x"


def errors_for(make_settings: MakeSettings, flow: dict[str, Any], **extra: Any) -> list[str]:
    _, errors = load_flows(make_settings({"flows": {"f": flow}, **extra}))
    return [str(e) for e in errors]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            {"a": {"url": URL, "depends_on": ["ghost"]}},
            "flow 'f', step 'a', field 'depends_on': unknown dependency 'ghost'",
        ),
        (
            {"a": {"url": URL, "depends_on": ["b"]}, "b": {"url": URL, "depends_on": ["a"]}},
            "field 'depends_on': dependency cycle: ",
        ),
        (
            {"a": {"url": URL}, "b": {"url": URL, "body": {"x": "${steps.a.output}"}}},
            "flow 'f', step 'b', field 'body': steps.a.output: step 'a' is not an ancestor",
        ),
        (
            {"a": {"url": URL, "when": "steps.zzz.status == 'x'"}},
            "flow 'f', step 'a', field 'when': steps.zzz.status: unknown step 'zzz'",
        ),
        (
            {"a": {"url": URL, "headers": {"x": "${input.a +}"}}},
            "flow 'f', step 'a', field 'headers': bad template",
        ),
        (
            {"a": {"url": "${settings.functions.nope}"}},
            "flow 'f', step 'a', field 'url': settings.functions.nope: is not configured",
        ),
        (
            {"a": {"url": "${settings.auth.api_keys}"}},
            "field 'url': settings.auth.api_keys: only settings.{functions,service} are readable",
        ),
        (
            {"a": {"url": "${env.HOME}"}},
            "field 'url': env.HOME: unknown root 'env'",
        ),
        (
            {"a": {"url": URL, "auth": {"type": "kerberos"}}},
            "flow 'f', step 'a', field 'auth.type': unknown auth type 'kerberos'",
        ),
        (
            {"a": {"url": URL, "auth": {"type": "bearer"}}},
            "flow 'f', step 'a', field 'auth.token': Field required",
        ),
        (
            {"a": {"url": URL, "auth": {"type": "aws_sigv4", "regin": "x"}}},
            "flow 'f', step 'a', field 'auth.regin': unknown key",
        ),
        (
            {"a": {"url": URL, "retry": {"max_attempts": 0}}},
            "flow 'f', step 'a', field 'retry.max_attempts': Input should be greater than",
        ),
        (
            {"a": {"url": URL, "timeot": 3}},
            "flow 'f', step 'a', field 'timeot': unknown key",
        ),
    ],
)
def test_invalid_flows_are_reported_with_flow_step_and_field(
    make_settings: MakeSettings, steps: dict[str, Any], expected: str
) -> None:
    errors = errors_for(make_settings, {"steps": steps})
    assert any(expected in e for e in errors), errors


def test_output_may_reference_any_step_but_not_unknown_ones(make_settings: MakeSettings) -> None:
    flow = {"steps": {"a": {"url": URL}}, "output": {"x": "${steps.b.output}"}}
    assert errors_for(make_settings, flow) == [
        "flow 'f', field 'output': steps.b.output: unknown step 'b'"
    ]


def test_valid_flow_compiles_with_transitive_ancestor_references(
    make_settings: MakeSettings,
) -> None:
    flow = {
        "steps": {
            "a": {"url": "${settings.functions.embed}"},
            "b": {"url": URL, "depends_on": ["a"]},
            "c": {"url": URL, "depends_on": ["b"], "body": "${steps.a.output}"},
        },
        "webhook": {"url": "${input.callback_url}"},
    }
    flows, errors = load_flows(make_settings({"flows": {"f": flow}, "functions": {"embed": URL}}))
    assert errors == []
    assert flows["f"].graph == {"a": (), "b": ("a",), "c": ("b",)}
    assert flows["f"].webhook_guarded
    assert not flows["f"].steps["a"].guarded


def test_flows_dir_files_are_loaded(make_settings: MakeSettings, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "one.yaml").write_text(yaml.safe_dump({"steps": {"a": {"url": URL}}}))
    (folder / "many.yml").write_text(
        yaml.safe_dump({"flows": {"two": {"steps": {"b": {"url": URL}}}}})
    )
    flows, errors = load_flows(make_settings({"flows_dir": str(folder)}))
    assert errors == []
    assert sorted(flows) == ["one", "two"]


def _write_config(tmp_path: Path, flows: dict[str, Any]) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"flows": flows}))
    return path


def test_cli_validate_exits_2_and_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path, {"bad": {"steps": {"a": {"url": URL, "depends_on": ["x"]}}}})
    assert main(["flows", "validate", "--config", str(path)]) == 2
    assert "flow 'bad', step 'a', field 'depends_on'" in capsys.readouterr().err


def test_cli_validate_and_graph_on_valid_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = {
        "steps": {
            "embed": {"url": URL, "when": "input.create_user_embedding"},
            "match": {"url": URL, "depends_on": ["embed"]},
            "vacancy": {"url": URL, "depends_on": ["embed"], "optional": True},
        }
    }
    path = _write_config(tmp_path, {"match_user": flow})
    assert main(["flows", "validate", "-c", str(path)]) == 0
    assert "1 flow(s) valid: match_user" in capsys.readouterr().out
    assert main(["flows", "graph", "match_user", "-c", str(path)]) == 0
    graph = capsys.readouterr().out.splitlines()
    assert graph[0] == "flowchart TD"
    assert '    s_embed["embed<br/>when: input.create_user_embedding"]' in graph
    assert '    s_vacancy(["vacancy"])' in graph
    assert "    s_embed --> s_match" in graph
    assert main(["flows", "graph", "nope", "-c", str(path)]) == 2


async def test_invalid_flow_fails_readiness_but_service_keeps_serving(
    flow_settings: FlowSettings,
) -> None:
    flows = {
        "good": {"steps": {"a": {"url": URL}}},
        "bad": {"steps": {"a": {"url": URL, "depends_on": ["ghost"]}}},
    }
    async with orchestrator_app(flow_settings(flows)) as (client, _):
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
        bad = await client.post("/orchestrate/bad", json={})
    assert ready.status_code == 503
    check = ready.json()["checks"]["flows"]
    assert check["status"] == "fail" and check["required"] is True
    assert "flow 'bad', step 'a', field 'depends_on': unknown dependency 'ghost'" in check["detail"]
    assert live.status_code == 200
    assert bad.status_code == 404 and "invalid" in bad.json()["error"]["message"]
