"""The Lambda handler writes the invocation's metric deltas as CloudWatch EMF on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from aiservice import Settings
from aiservice.platforms.aws_lambda import LambdaHandler

from .conftest import CHAT, chat_event, emf_documents, emf_settings, metric_values, units

MakeHandler = Callable[[Settings], LambdaHandler]


def invoke(handler: LambdaHandler, event: dict[str, Any], capsys: Any) -> list[dict[str, Any]]:
    result = handler(event, None)
    assert result["statusCode"] == 200, result
    return emf_documents(capsys.readouterr().out)


def test_chat_completion_invocation_emits_one_valid_emf_document(
    aws_handler: MakeHandler, capsys: Any
) -> None:
    handler = aws_handler(emf_settings(namespace="aiservice-test"))
    docs = invoke(handler, chat_event(), capsys)

    assert len(docs) == 1  # one line for an ordinary invocation
    doc = docs[0]
    values = metric_values(doc)
    assert {d["Namespace"] for d in doc["_aws"]["CloudWatchMetrics"]} == {"aiservice-test"}
    assert values["http_requests"] == 1
    assert values["llm_requests"] == 1
    assert values["cache_requests"] == 1
    assert values["llm_tokens_input"] > 0 and values["llm_tokens_output"] > 0
    # 2 USD / 1M input tokens, 4 USD / 1M output tokens
    expected_cost = (values["llm_tokens_input"] * 2 + values["llm_tokens_output"] * 4) / 1e6
    assert values["llm_cost_usd"] == pytest.approx(expected_cost)
    latency = values["http_request_duration_seconds"]
    assert latency["Counts"] == [1] and 0 < latency["Values"][0] < 30
    assert units(doc) == {
        **units(doc),
        "http_requests": "Count",
        "llm_tokens_input": "Count",
        "llm_cost_usd": "None",
        "http_request_duration_seconds": "Seconds",
        "llm_request_duration_seconds": "Seconds",
    }
    assert doc["service"] == "aiservice"
    assert (doc["route"], doc["method"], doc["status_class"]) == (
        "/v1/chat/completions",
        "POST",
        "2xx",
    )
    assert (doc["provider"], doc["model"], doc["status"], doc["result"]) == (
        "fake",
        "fake",
        "ok",
        "miss",
    )


def test_each_invocation_emits_only_its_own_deltas(aws_handler: MakeHandler, capsys: Any) -> None:
    handler = aws_handler(emf_settings())
    first = metric_values(invoke(handler, chat_event(), capsys)[0])
    [doc] = invoke(handler, chat_event(), capsys)  # identical request: a cache hit
    second = metric_values(doc)

    assert first["http_requests"] == second["http_requests"] == 1
    assert doc["result"] == "hit" and second["cache_requests"] == 1
    # No upstream call the second time: no LLM series at all, not the first call's totals.
    assert not any(name.startswith("llm_") for name in second)
    assert second["http_request_duration_seconds"]["Counts"] == [1]


def test_a_health_check_between_chats_carries_no_llm_metrics(
    aws_handler: MakeHandler, capsys: Any
) -> None:
    handler = aws_handler(emf_settings())
    invoke(handler, chat_event(), capsys)
    event = chat_event()
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/health/live"
    event["requestContext"]["http"]["method"] = "GET"
    event.pop("body")
    [doc] = invoke(handler, event, capsys)
    assert set(metric_values(doc)) == {"http_requests", "http_request_duration_seconds"}
    assert (doc["route"], doc["method"]) == ("/health/live", "GET")


@pytest.mark.parametrize("metrics", [{"sink": "none"}, {"enabled": False}, {"sink": "prometheus"}])
def test_nothing_is_emitted_when_the_sink_does_not_push(
    metrics: dict[str, Any], aws_handler: MakeHandler, capsys: Any
) -> None:
    handler = aws_handler(emf_settings(**metrics))
    assert handler.metrics is None
    result = handler(chat_event(), None)
    assert result["statusCode"] == 200
    assert capsys.readouterr().out == ""


def test_metrics_endpoint_still_answers_with_emf_on(aws_handler: MakeHandler, capsys: Any) -> None:
    handler = aws_handler(emf_settings(sink="emf"))
    invoke(handler, chat_event(), capsys)
    event = chat_event()
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/metrics"
    event["requestContext"]["http"]["method"] = "GET"
    event.pop("body")
    result = handler(event, None)
    assert result["statusCode"] == 200
    assert (
        'aiservice_llm_tokens_total{model="fake",provider="fake",type="input"}' in (result["body"])
    )


def test_request_ids_and_user_data_never_become_dimensions(
    aws_handler: MakeHandler, capsys: Any
) -> None:
    handler = aws_handler(emf_settings())
    event = chat_event({**CHAT, "user": "alice@example.com"})
    event["headers"]["x-request-id"] = "req-123456789"
    event["requestContext"]["requestId"] = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    [doc] = invoke(handler, event, capsys)
    line = json.dumps(doc)
    for secret in ("alice@example.com", "req-123456789", event["requestContext"]["requestId"]):
        assert secret not in line
    dimensions = {k for d in doc["_aws"]["CloudWatchMetrics"] for s in d["Dimensions"] for k in s}
    assert dimensions <= {
        "service",
        "route",
        "method",
        "status_class",
        "provider",
        "model",
        "status",
        "result",
        "backend",
    }
