"""The Lambda bridge buffers responses: any failure before the response is complete is a 500."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import load_event

Send = Callable[[dict[str, Any]], Awaitable[None]]

START = {"type": "http.response.start", "status": 200, "headers": [[b"x-partial", b"1"]]}
BODY = {"type": "http.response.body", "body": b"partial"}


def http_only(respond: Callable[[Send], Awaitable[None]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        assert scope["type"] == "http"  # no lifespan: served without one
        await respond(send)

    return app


async def raise_after_start(send: Send) -> None:
    await send(START)
    raise RuntimeError("database went away mid-response")


async def raise_after_partial_body(send: Send) -> None:
    await send(START)
    await send({**BODY, "more_body": True})
    raise RuntimeError("stream broke")


async def start_twice(send: Send) -> None:
    await send(START)
    await send(START)


async def body_before_start(send: Send) -> None:
    await send(BODY)


async def return_without_response(send: Send) -> None:
    return None


async def return_mid_body(send: Send) -> None:
    await send(START)
    await send({**BODY, "more_body": True})


async def unknown_message(send: Send) -> None:
    await send({"type": "http.response.trailers", "headers": []})


FAILURES = {
    "exception after http.response.start": (raise_after_start, "database went away"),
    "exception after part of the body": (raise_after_partial_body, "stream broke"),
    "second http.response.start": (start_twice, "sent twice"),
    "body before http.response.start": (body_before_start, "before 'http.response.start'"),
    "message outside the HTTP protocol": (unknown_message, "http.response.trailers"),
}


@pytest.mark.parametrize("name", sorted(FAILURES))
@pytest.mark.parametrize("event", ["apiGatewayProxyEvent.json", "apiGatewayProxyV2Event.json"])
def test_failure_before_the_response_is_complete_answers_500(
    name: str, event: str, make_handler: Any, json_logs: Any
) -> None:
    respond, logged = FAILURES[name]
    result = make_handler(http_only(respond))(load_event(event), None)
    assert result["statusCode"] == 500
    assert "x-partial" not in result["headers"]  # nothing of the failed response leaks
    assert json.loads(result["body"]) == {
        "error": {
            "message": "Internal server error",
            "type": "server_error",
            "code": "internal_error",
            "param": None,
        }
    }
    assert result["headers"]["content-type"] == "application/json"
    (error,) = [r for r in json_logs.records if r["severity"] == "ERROR"]
    assert error["message"].startswith("unhandled error in the app for")
    assert "Traceback" in error["exc_info"] and logged in error["exc_info"]


@pytest.mark.parametrize("respond", [return_without_response, return_mid_body])
def test_returning_without_a_complete_response_answers_500(
    respond: Any, make_handler: Any, json_logs: Any
) -> None:
    result = make_handler(http_only(respond))(load_event("albEvent.json"), None)
    assert result["statusCode"] == 500
    assert json.loads(result["body"])["error"]["type"] == "server_error"
    (error,) = [r for r in json_logs.records if r["severity"] == "ERROR"]
    assert error["message"].startswith("the app returned without sending")


def test_error_after_a_complete_response_keeps_the_response(
    make_handler: Any, json_logs: Any
) -> None:
    """Like a background task failing: the client already has its answer, so keep it."""

    async def respond(send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"done"})
        raise RuntimeError("background task failed")

    result = make_handler(http_only(respond))(load_event("apiGatewayProxyV2Event.json"), None)
    assert (result["statusCode"], result["body"]) == (200, "done")
    (error,) = [r for r in json_logs.records if r["severity"] == "ERROR"]
    assert "after its response was complete" in error["message"]
    assert "background task failed" in error["exc_info"]


def test_a_chunked_response_is_buffered_whole(make_handler: Any) -> None:
    async def respond(send: Send) -> None:
        await send({**START, "headers": [[b"content-type", b"text/plain"]]})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    result = make_handler(http_only(respond))(load_event("apiGatewayProxyV2Event.json"), None)
    assert (result["statusCode"], result["body"]) == (200, "abc")
