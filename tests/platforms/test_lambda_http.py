"""The Lambda bridge on HTTP events: every sample event, cookies, stages, binary, lifespan."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from aiservice import Settings, create_app
from aiservice.platforms.lambda_http import decode_body

from .conftest import load_event, probe_app

HTTP_EVENTS = {
    "albEvent.json": ("GET", "/lambda"),
    "albMultiValueHeadersEvent.json": ("GET", "/todos"),
    "albMultiValueQueryStringEvent.json": ("GET", "/todos"),
    "apiGatewayProxyEvent.json": ("GET", "/my/path"),
    "apiGatewayProxyV2Event.json": ("POST", "/my/path"),
    "apiGatewayProxyV2IamEvent.json": ("GET", "/my/path"),
    "lambdaFunctionUrlEvent.json": ("GET", "/"),
    "lambdaFunctionUrlEventWithHeaders.json": ("GET", "/"),
    "lambdaFunctionUrlIAMEvent.json": ("POST", "/my/path"),
    "vpcLatticeV2Event.json": ("GET", "/newpath"),
}


def echo(result: dict[str, Any]) -> dict[str, Any]:
    assert result["statusCode"] == 200, result
    data: dict[str, Any] = json.loads(decode_body(result))
    return data


@pytest.mark.parametrize("name", sorted(HTTP_EVENTS))
def test_every_sample_http_event_reaches_the_app(name: str, make_handler: Any) -> None:
    """Each HTTP sample event is routed to the app with its method, path and body."""
    handler = make_handler(probe_app())
    event = load_event(name)
    seen = echo(handler(event, None))
    method, path = HTTP_EVENTS[name]
    assert (seen["method"], seen["path"]) == (method, path)
    raw_body = event.get("body") or ""
    assert seen["body"] == raw_body
    assert seen["state"] == "lifespan"  # lifespan state reaches requests


def test_vpc_lattice_v2_query_and_response_shape(make_handler: Any) -> None:
    """VPC Lattice v2 (which Mangum mis-routes) keeps its query and gets a Lattice response."""
    result = make_handler(probe_app())(load_event("vpcLatticeV2Event.json"), None)
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert echo(result)["query"] == [["order-id", "1"]]
    assert result["headers"]["content-type"] == "application/json"


def test_alb_multi_value_query_string_keeps_every_value(make_handler: Any) -> None:
    event = load_event("albMultiValueQueryStringEvent.json")
    expected = sorted(
        [k, v] for k, values in event["multiValueQueryStringParameters"].items() for v in values
    )
    assert echo(make_handler(probe_app())(event, None))["query"] == expected


def test_rest_v1_multi_value_cookie_headers_are_separate_cookies(make_handler: Any) -> None:
    """Mangum joins them with ", " so the app sees one cookie; we join with "; "."""
    event = load_event("apiGatewayProxyEvent.json")
    event["headers"]["Cookie"] = "b=2"
    event["multiValueHeaders"]["Cookie"] = ["a=1", "b=2"]
    assert echo(make_handler(probe_app())(event, None))["cookies"] == {"a": "1", "b": "2"}


def test_alb_repeated_cookie_headers_are_merged(make_handler: Any) -> None:
    event = load_event("albMultiValueHeadersEvent.json")
    event["multiValueHeaders"]["cookie"] = ["session=abc", "theme=dark; lang=pt"]
    seen = echo(make_handler(probe_app())(event, None))
    assert seen["cookies"] == {"session": "abc", "theme": "dark", "lang": "pt"}


def test_http_api_v2_cookies_reach_the_app(make_handler: Any) -> None:
    event = load_event("apiGatewayProxyV2Event.json")
    event["cookies"] = ["a=1", "b=x y"]
    assert echo(make_handler(probe_app())(event, None))["cookies"] == {"a": "1", "b": "x y"}


def _rest_event_with_stage(path: str, stage: str) -> dict[str, Any]:
    event = load_event("apiGatewayProxyEvent.json")
    event.update(path=path, resource="/{proxy+}", body=None, multiValueQueryStringParameters=None)
    event["queryStringParameters"] = None
    event["requestContext"].update(stage=stage, path=f"/{stage}{path}")
    return event


def test_rest_v1_stage_becomes_root_path(make_handler: Any) -> None:
    seen = echo(make_handler(probe_app())(_rest_event_with_stage("/items/7", "prod"), None))
    assert (seen["root_path"], seen["path"]) == ("/prod", "/items/7")


def test_http_api_v2_named_stage_becomes_root_path(make_handler: Any) -> None:
    event = load_event("apiGatewayProxyV2Event.json")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/beta/items"
    event["requestContext"]["stage"] = "beta"
    seen = echo(make_handler(probe_app())(event, None))
    assert (seen["root_path"], seen["path"]) == ("/beta", "/items")


def test_default_stage_has_no_root_path(make_handler: Any) -> None:
    seen = echo(make_handler(probe_app())(load_event("apiGatewayProxyV2Event.json"), None))
    assert seen["root_path"] == ""


def test_docs_behind_a_stage_url_load_the_schema_from_the_stage(make_handler: Any) -> None:
    """/docs must point at /prod/openapi.json, or the page is blank behind the stage URL."""
    handler = make_handler(create_app(Settings(), configure_logs=False))
    docs = handler(_rest_event_with_stage("/docs", "prod"), None)
    assert docs["statusCode"] == 200
    assert "'/prod/openapi.json'" in decode_body(docs).decode()
    schema = handler(_rest_event_with_stage("/openapi.json", "prod"), None)
    assert schema["statusCode"] == 200
    assert "/health/live" in json.loads(decode_body(schema))["paths"]


@pytest.mark.parametrize("name", ["apiGatewayProxyV2Event.json", "apiGatewayProxyEvent.json"])
def test_binary_request_and_response_bodies_round_trip(name: str, make_handler: Any) -> None:
    payload = os.urandom(2048) + b"\x00\xff"
    event = load_event(name)
    event["body"] = base64.b64encode(payload).decode()
    event["isBase64Encoded"] = True
    event["headers"] = {"content-type": "application/octet-stream"}
    event.pop("multiValueHeaders", None)
    result = make_handler(probe_app())(event, None)
    assert result["statusCode"] == 200 and result["isBase64Encoded"] is True
    assert decode_body(result) == payload


def test_lifespan_runs_once_per_environment_not_per_invocation(make_handler: Any) -> None:
    calls: dict[str, int] = {}
    handler = make_handler(probe_app(calls))
    for name in ("apiGatewayProxyV2Event.json", "albEvent.json", "vpcLatticeV2Event.json"):
        echo(handler(load_event(name), None))
    assert calls == {"startup": 1}
    handler.shutdown()
    assert calls == {"startup": 1, "shutdown": 1}


def test_app_without_lifespan_support_is_served(make_handler: Any) -> None:
    """A bare ASGI callable that rejects the lifespan scope still answers requests."""

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http", "no lifespan here"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handler = make_handler(bare)
    result = handler(load_event("apiGatewayProxyV2Event.json"), None)
    assert result["statusCode"] == 204
    assert handler.app_lifespan.supported is False


def test_failed_startup_fails_the_invocation_and_is_retried(make_handler: Any) -> None:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from aiservice.platforms.lifespan import LifespanError

    attempts: list[int] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database unreachable")
        yield

    app = FastAPI(lifespan=lifespan)
    handler = make_handler(app)
    with pytest.raises(LifespanError, match="database unreachable"):
        handler(load_event("apiGatewayProxyV2Event.json"), None)
    assert handler(load_event("apiGatewayProxyV2Event.json"), None)["statusCode"] == 404
    assert len(attempts) == 2


def test_app_crash_becomes_a_500_envelope(make_handler: Any) -> None:
    async def crashing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("boom")

    result = make_handler(crashing)(load_event("apiGatewayProxyV2Event.json"), None)
    assert result["statusCode"] == 500
    assert json.loads(result["body"])["error"]["type"] == "server_error"
