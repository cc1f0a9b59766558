"""Choosing the sink, and the Lambda bridge flushing it after every invocation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiservice import Settings
from aiservice.config import load_settings
from aiservice.errors import ConfigError
from aiservice.observability.sinks import sink_name
from aiservice.platforms.aws_lambda import LambdaHandler
from tests.platforms.conftest import EVENTS_DIR, load_event, probe_app
from tests.platforms.procs import REPO, clean_env


@pytest.mark.parametrize(
    ("metrics", "on_lambda", "expected"),
    [
        ({}, True, "emf"),
        ({}, False, "prometheus"),
        ({"sink": "emf"}, False, "emf"),
        ({"sink": "prometheus"}, True, "prometheus"),
        ({"enabled": False}, True, "none"),
        ({"enabled": False, "sink": "emf"}, True, "none"),
    ],
)
def test_sink_name(metrics: dict[str, Any], on_lambda: bool, expected: str) -> None:
    assert sink_name(Settings(metrics=metrics), on_lambda=on_lambda) == expected


def test_an_unknown_sink_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "aiservice.yaml").write_text("metrics: {sink: statsd}\n")
    with pytest.raises(ConfigError, match=r"metrics\.sink"):
        load_settings(environ={}, dotenv_file=None, cwd=tmp_path)


class CountingSink:
    def __init__(self, fail: bool = False) -> None:
        self.flushes = 0
        self.fail = fail

    def flush(self) -> None:
        self.flushes += 1
        if self.fail:
            raise OSError("stdout is closed")


def test_other_apps_get_no_sink(make_handler: Callable[..., LambdaHandler]) -> None:
    assert make_handler(probe_app()).metrics is None


def test_flushed_after_http_and_after_a_failing_invocation(
    make_handler: Callable[..., LambdaHandler],
) -> None:
    sink = CountingSink()
    handler = make_handler(probe_app(), metrics=sink)
    assert handler(load_event("apiGatewayProxyV2Event.json"), None)["statusCode"] == 200
    assert sink.flushes == 1
    with pytest.raises(Exception, match="neither an HTTP request"):
        handler({"not": "an event"}, None)
    assert sink.flushes == 2


@pytest.mark.parametrize("name", ["sqsEvent.json", "eventBridgeEvent.json"])
def test_flushed_after_non_http_events(
    name: str, make_handler: Callable[..., LambdaHandler]
) -> None:
    sink = CountingSink()
    handler = make_handler(probe_app(), metrics=sink)
    try:
        handler(load_event(name), None)
    except Exception:  # without a configured action the event fails: flushed all the same
        pass
    assert sink.flushes == 1


def test_a_failing_flush_never_fails_the_invocation_and_is_logged_once(
    make_handler: Callable[..., LambdaHandler], json_logs: Any
) -> None:
    sink = CountingSink(fail=True)
    handler = make_handler(probe_app(), metrics=sink)
    for _ in range(3):
        assert handler(load_event("apiGatewayProxyV2Event.json"), None)["statusCode"] == 200
    assert sink.flushes == 3
    warnings = [r for r in json_logs.records if "metrics flush failed" in r["message"]]
    assert len(warnings) == 1


PROBE = """
import json, sys
sys.path.insert(0, {adapters!r})
import aws_lambda
imported_at_init = "aiservice.observability.emf" in sys.modules
event = json.loads(open({event!r}).read())
event["rawPath"] = event["requestContext"]["http"]["path"] = "/health/live"
event["requestContext"]["http"]["method"] = "GET"
status = aws_lambda.handler(event, None)["statusCode"]
print(json.dumps({{"emf_imported": imported_at_init, "status": status}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sink", ["auto", "none"])
def test_lambda_adapter_emits_emf_by_default_and_nothing_when_off(
    sink: str, tmp_path: Path
) -> None:
    """The real adapters/aws_lambda.py in a fresh process: auto is EMF on Lambda."""
    code = PROBE.format(
        adapters=str(REPO / "adapters"), event=str(EVENTS_DIR / "apiGatewayProxyV2Event.json")
    )
    env = clean_env(AISERVICE_LOGGING__ACCESS_LOG="false", AISERVICE_METRICS__SINK=sink)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["status"] == 200
    emf = [json.loads(line) for line in lines[:-1] if '"_aws"' in line]
    if sink == "none":
        assert result["emf_imported"] is False and emf == []
        return
    assert result["emf_imported"] is True
    [doc] = emf
    assert doc["route"] == "/health/live" and doc["http_requests"] == 1
