"""Mangum's constructor options and signature on the Lambda bridge, and Lambda@Edge events."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from mangum.exceptions import ConfigurationError as MangumConfigurationError

from aiservice.platforms import Mangum, lambda_handler
from aiservice.platforms.aws_lambda import ConfigurationError, LambdaHandler
from aiservice.platforms.lambda_events import UnhandledEventError
from aiservice.platforms.lambda_http import decode_body

from .conftest import load_event, probe_app
from .procs import clean_env


def headers_app(*headers: tuple[bytes, bytes], content_type: bytes = b"text/plain") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        sent = [[b"content-type", content_type], *([k, v] for k, v in headers)]
        await send({"type": "http.response.start", "status": 200, "headers": sent})
        await send({"type": "http.response.body", "body": b"hello"})

    return app


def test_migration_is_an_import_change(make_handler: Any) -> None:
    """Mangum's positional order and options are accepted, and the attributes it exposes."""
    handler = make_handler(probe_app(), Mangum, lifespan="off")
    assert isinstance(handler, LambdaHandler)
    positional = Mangum(headers_app(), "off", "/api", None, ["text/"], ["X-Secret"])
    try:
        assert positional.lifespan == "off"
        assert positional.config == {
            "api_gateway_base_path": "/api",
            "text_mime_types": ["text/"],
            "exclude_headers": ["x-secret"],
        }
    finally:
        positional.close()
    assert handler(load_event("apiGatewayProxyV2Event.json"), None)["statusCode"] == 200


def test_lambda_handler_takes_the_same_keywords(make_handler: Any) -> None:
    options = {
        "lifespan": "on",
        "api_gateway_base_path": "/",
        "custom_handlers": [],
        "text_mime_types": None,
        "exclude_headers": ["server"],
    }
    handler = lambda_handler(probe_app(), install_signal_handlers=False, **options)
    try:
        assert handler(load_event("albEvent.json"), None)["statusCode"] == 200
    finally:
        handler.close()


@pytest.mark.parametrize("value", ["yes", "ON", ""])
def test_invalid_lifespan_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="Choices are: auto|on|off") as caught:
        Mangum(probe_app(), lifespan=value)  # type: ignore[arg-type]
    assert isinstance(caught.value, MangumConfigurationError)
    assert isinstance(caught.value, ValueError)


def test_importing_the_package_does_not_import_mangum() -> None:
    code = "import sys, aiservice.platforms; print('mangum' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


EXCLUDE_EVENTS = [
    "apiGatewayProxyEvent.json",
    "apiGatewayProxyV2Event.json",
    "albEvent.json",
    "albMultiValueHeadersEvent.json",
    "lambdaFunctionUrlEvent.json",
    "vpcLatticeV2Event.json",
]


def _header_names(result: dict[str, Any]) -> set[str]:
    names = {k.lower() for k in result.get("headers") or {}}
    return names | {k.lower() for k in result.get("multiValueHeaders") or {}}


@pytest.mark.parametrize("name", EXCLUDE_EVENTS)
def test_exclude_headers_drops_them_in_any_case(name: str, make_handler: Any) -> None:
    app = headers_app((b"X-Powered-By", b"asgi"), (b"x-kept", b"1"), (b"x-powered-by", b"again"))
    result = make_handler(app, exclude_headers=["X-POWERED-BY"])(load_event(name), None)
    assert "x-kept" in _header_names(result)
    assert "x-powered-by" not in _header_names(result)
    unfiltered = make_handler(app)(load_event(name), None)
    assert "x-powered-by" in _header_names(unfiltered)


def test_text_mime_types_choose_text_or_base64(make_handler: Any) -> None:
    event = load_event("apiGatewayProxyV2Event.json")
    custom = headers_app(content_type=b"application/vnd.custom")
    assert make_handler(custom)(event, None)["isBase64Encoded"] is True
    as_text = make_handler(custom, text_mime_types=["application/vnd.custom"])(event, None)
    assert (as_text["isBase64Encoded"], as_text["body"]) == (False, "hello")
    ndjson = make_handler(headers_app(content_type=b"application/x-ndjson"))(event, None)
    assert ndjson["isBase64Encoded"] is False  # aiservice's default adds NDJSON to Mangum's


def test_api_gateway_base_path_is_stripped(make_handler: Any) -> None:
    event = load_event("apiGatewayProxyEvent.json")  # path /my/path
    seen = json.loads(decode_body(make_handler(probe_app(), api_gateway_base_path="/my")(event)))
    assert seen["path"] == "/path"


class EchoTranslator:
    """A Mangum-style handler: claims events with an "echo" key, answers a plain dict."""

    calls: list[str] = []

    @classmethod
    def infer(cls, event: dict[str, Any], context: Any, config: dict[str, Any]) -> bool:
        cls.calls.append("infer")
        return "echo" in event

    def __init__(self, event: dict[str, Any], context: Any, config: dict[str, Any]) -> None:
        self.event, self.config = event, config

    @property
    def body(self) -> bytes:
        return str(self.event.get("echo", "")).encode()

    @property
    def scope(self) -> dict[str, Any]:
        headers = [[b"cookie", b"a=1"], [b"cookie", b"b=2"]]
        return {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": "/echo",
            "raw_path": None,
            "root_path": "",
            "scheme": "https",
            "query_string": b"",
            "headers": headers,
            "server": ("custom", 443),
            "client": ("127.0.0.1", 0),
            "asgi": {"version": "3.0", "spec_version": "2.0"},
        }

    def __call__(self, response: dict[str, Any]) -> dict[str, Any]:
        return {"code": response["status"], "text": response["body"].decode()}


class ClaimsEverything(EchoTranslator):
    @classmethod
    def infer(cls, event: dict[str, Any], context: Any, config: dict[str, Any]) -> bool:
        return True


def test_custom_handlers_take_their_events(make_handler: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope)
            body = (await receive())["body"]
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": body[::-1]})

    handler = make_handler(app, custom_handlers=[EchoTranslator])
    assert handler({"echo": "abc"}, None) == {"code": 201, "text": "cba"}
    # Its scope is used as built (no cookie merge for a custom format), plus lifespan state.
    assert [v for k, v in seen[0]["headers"] if k == b"cookie"] == [b"a=1", b"b=2"]
    assert "state" in seen[0]
    # Events it does not claim still reach the built-in translators.
    assert handler(load_event("albEvent.json"), None)["statusCode"] == 201


def test_custom_handlers_come_before_the_built_in_ones(make_handler: Any) -> None:
    EchoTranslator.calls.clear()
    handler = make_handler(probe_app(), custom_handlers=[EchoTranslator, ClaimsEverything])
    event = {**load_event("apiGatewayProxyV2Event.json"), "echo": "x"}
    assert handler(event, None)["code"] == 200  # EchoTranslator's answer, not API Gateway's
    assert "echo" not in load_event("apiGatewayProxyV2Event.json")
    other = handler(load_event("apiGatewayProxyV2Event.json"), None)
    assert set(other) == {"code", "text"}  # ClaimsEverything, before HTTPGateway
    assert EchoTranslator.calls == ["infer", "infer"]


def test_access_log_line_per_http_invocation(make_handler: Any, json_logs: Any) -> None:
    make_handler(probe_app())(load_event("albEvent.json"), None)
    make_handler(probe_app(), access_log=False)(load_event("albEvent.json"), None)
    lines = [r["message"] for r in json_logs.records if r["logger"].endswith(".access")]
    assert lines == ["GET /lambda 200"]


def test_the_thread_gets_the_loop_the_app_runs_on(make_handler: Any) -> None:
    """As with Mangum, clients made on asyncio.get_event_loop() at import work in the app."""
    handler = make_handler(probe_app())
    loop_at_import = asyncio.get_event_loop()
    ran_on: list[asyncio.AbstractEventLoop] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            ran_on.append(asyncio.get_running_loop())
            await headers_app()(scope, receive, send)

    make_handler(app)(load_event("albEvent.json"), None)
    assert handler.loop is loop_at_import and ran_on == [loop_at_import]


def test_a_thread_without_a_loop_gets_one_that_close_releases() -> None:
    made: dict[str, Any] = {}

    def build() -> None:
        handler = Mangum(probe_app(), install_signal_handlers=False)
        current = asyncio.get_event_loop()  # raises in a thread without a loop
        made["status"] = handler(load_event("albEvent.json"), None)["statusCode"]
        handler.close()
        made["closed"] = current.is_closed()
        try:
            asyncio.get_event_loop()
        except RuntimeError:
            made["released"] = True

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert made == {"status": 200, "closed": True, "released": True}


def edge_event(uri: str = "/items", querystring: str = "q=1&q=2", **request: Any) -> Any:
    """A CloudFront origin-request event, in the format of the Lambda@Edge docs."""

    def header(key: str, *values: str) -> list[dict[str, str]]:
        return [{"key": key, "value": v} for v in values]

    cf_request = {
        "clientIp": "203.0.113.178",
        "method": "GET",
        "uri": uri,
        "querystring": querystring,
        "headers": {
            "host": header("Host", "d111111abcdef8.cloudfront.net"),
            "cloudfront-forwarded-proto": header("CloudFront-Forwarded-Proto", "https"),
            "user-agent": header("User-Agent", "Amazon CloudFront"),
        },
        **request,
    }
    config = {"distributionId": "EDFDVBD6EXAMPLE", "eventType": "origin-request"}
    return {"Records": [{"cf": {"config": config, "request": cf_request}}]}


def test_lambda_at_edge_request_reaches_the_app(make_handler: Any) -> None:
    payload = json.dumps({"n": 1}).encode()
    body = {"inputTruncated": False, "action": "read-only", "encoding": "base64"}
    event = edge_event(method="POST", body={**body, "data": base64.b64encode(payload).decode()})
    event["Records"][0]["cf"]["request"]["headers"]["cookie"] = [
        {"key": "Cookie", "value": "session=abc"},
        {"key": "Cookie", "value": "theme=dark"},
    ]
    result = make_handler(probe_app())(event, None)
    assert result["status"] == 200
    assert result["headers"]["content-type"] == [
        {"key": "content-type", "value": "application/json"}
    ]
    seen = json.loads(result["body"])
    assert (seen["method"], seen["path"], seen["body"]) == ("POST", "/items", payload.decode())
    assert seen["query"] == [["q", "1"], ["q", "2"]]
    assert seen["cookies"] == {"session": "abc", "theme": "dark"}  # every cookie header
    assert seen["state"] == "lifespan"


def test_lambda_at_edge_exclude_headers(make_handler: Any) -> None:
    app = headers_app((b"Server", b"uvicorn"), (b"x-kept", b"1"))
    result = make_handler(app, exclude_headers=["server"])(edge_event(), None)
    assert set(result["headers"]) == {"content-type", "x-kept"}


def test_documented_lambda_at_edge_binary_handler(make_handler: Any) -> None:
    """docs/deploy/lambda.md: a custom handler adds CloudFront's bodyEncoding."""
    from mangum.handlers import LambdaAtEdge

    class LambdaAtEdgeBinary(LambdaAtEdge):
        def __call__(self, response: Any) -> dict[str, Any]:
            result = super().__call__(response)
            result["bodyEncoding"] = "base64" if result.pop("isBase64Encoded") else "text"
            return result

    png = b"\x89PNG\r\n\x1a\n\x00\xff"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            image = scope["path"].endswith(".png")
            kind = b"image/png" if image else b"text/plain"
            await send(
                {"type": "http.response.start", "status": 200, "headers": [[b"content-type", kind]]}
            )
            await send({"type": "http.response.body", "body": png if image else b"hi"})

    handler = make_handler(app, custom_handlers=[LambdaAtEdgeBinary])
    image = handler(edge_event(uri="/logo.png"), None)
    assert image["bodyEncoding"] == "base64" and "isBase64Encoded" not in image
    assert base64.b64decode(image["body"]) == png
    text = handler(edge_event(uri="/hello"), None)
    assert (text["bodyEncoding"], text["body"]) == ("text", "hi")


def test_unhandled_event_message_names_lambda_at_edge(make_handler: Any) -> None:
    with pytest.raises(UnhandledEventError, match="Lambda@Edge") as caught:
        make_handler(probe_app())({"Records": [{"eventSource": "aws:kinesis"}]}, None)
    for source in ("API Gateway", "ALB", "Function URLs", "VPC Lattice", "CloudFront"):
        assert source in str(caught.value)
