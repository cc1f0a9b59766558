"""EMF helpers: API Gateway v2 chat events, the real Lambda handler, a spec checker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aiservice import Settings, create_app
from aiservice.app import get_runtime
from aiservice.platforms.aws_lambda import LambdaHandler
from tests.platforms.conftest import load_event, make_handler, thread_loop

__all__ = ["chat_event", "emf_documents", "make_handler", "thread_loop", "validate_emf"]

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "count my tokens"}]}


def chat_event(body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sample HTTP API (v2) event turned into ``POST /v1/chat/completions``."""
    event = load_event("apiGatewayProxyV2Event.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    event.pop("cookies", None)
    event["headers"] = {"content-type": "application/json"}
    event["body"] = json.dumps(body or CHAT)
    event["isBase64Encoded"] = False
    return event


def emf_settings(**metrics: Any) -> Settings:
    """The fake model priced, every request cached, ``metrics`` as given."""
    return Settings(
        pricing={"fake": {"input": 2.0, "output": 4.0}},
        cache={"mode": "on", "backend": "memory"},
        metrics=metrics,
        logging={"access_log": False},
    )


@pytest.fixture
def aws_handler(make_handler: Callable[..., LambdaHandler]) -> Callable[[Settings], LambdaHandler]:
    """The handler as adapters/aws_lambda.py builds it, for the given settings."""

    def make(settings: Settings) -> LambdaHandler:
        app = create_app(settings, configure_logs=False)
        runtime = get_runtime(app)
        return make_handler(
            app,
            runtime=runtime,
            events=runtime.settings.aws_lambda.events,
            resolve=runtime.secrets.resolve,
            access_log=False,
        )

    return make


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line that is an EMF document, each checked against the specification."""
    docs = []
    for line in stdout.splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)
            validate_emf(doc)
            docs.append(doc)
    return docs


def validate_emf(doc: dict[str, Any]) -> None:
    """The structural rules of the CloudWatch EMF specification (and its limits)."""
    meta = doc["_aws"]
    assert set(meta) == {"Timestamp", "CloudWatchMetrics"}
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    names: list[str] = []
    for directive in directives:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for key in dimension_set:  # every dimension references a string member
                assert isinstance(doc[key], str) and 0 < len(doc[key]) <= 1024, key
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric["Unit"] in {"Seconds", "Count", "None"}
            names.append(metric["Name"])
    assert len(names) <= 100 and len(set(names)) == len(names)
    for name in names:
        value = doc[name]
        if isinstance(value, dict):  # {Values, Counts}
            assert set(value) == {"Values", "Counts"}
            assert 0 < len(value["Values"]) == len(value["Counts"]) <= 100
            assert all(isinstance(v, int | float) for v in value["Values"] + value["Counts"])
        else:
            assert isinstance(value, int | float) and not isinstance(value, bool), name


def metric_values(doc: dict[str, Any]) -> dict[str, Any]:
    """Metric name -> value of one document."""
    return {
        m["Name"]: doc[m["Name"]] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]
    }


def units(doc: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
