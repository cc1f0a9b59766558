"""The app's lifespan on Lambda: modes "auto" / "on" / "off", failures that fail fast and loud."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mangum.exceptions import LifespanFailure as MangumLifespanFailure

from aiservice.platforms.aws_lambda import LifespanFailure
from aiservice.platforms.lifespan import LifespanError

from .conftest import load_event, probe_app

EVENT = "apiGatewayProxyV2Event.json"
Lifespan = Callable[[Any, Any, Any], Awaitable[None]]


def with_lifespan(lifespan: Lifespan, seen: list[dict[str, Any]] | None = None) -> Any:
    """A raw ASGI app: ``lifespan`` handles the lifespan scope, requests answer 200."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(scope, receive, send)
            return
        if seen is not None:
            seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def invoke(handler: Any, timeout: float = 5.0) -> Any:
    """One invocation, bounded: a hang fails the test instead of eating the CI budget."""
    coro = asyncio.wait_for(handler.handle(load_event(EVENT)), timeout)
    return handler.loop.run_until_complete(coro)


def errors(json_logs: Any) -> list[dict[str, Any]]:
    return [r for r in json_logs.records if r["severity"] == "ERROR"]


async def raising_startup(scope: Any, receive: Any, send: Any) -> None:
    await receive()  # lifespan.startup
    raise ConnectionError("cache unreachable")


async def response_during_startup(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.Event().wait()  # what made the invocation hang: the app never finishes


async def rejects_the_scope(scope: Any, receive: Any, send: Any) -> None:
    raise ValueError(f"unsupported scope {scope['type']}")


async def reports_failure(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no API key configured"})
    await asyncio.Event().wait()  # an app may keep waiting after reporting the failure


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_response_message_during_startup_fails_fast(
    mode: str, make_handler: Any, json_logs: Any
) -> None:
    handler = make_handler(with_lifespan(response_during_startup), lifespan=mode)
    with pytest.raises(LifespanFailure, match="'http.response.start' during lifespan startup"):
        invoke(handler)
    assert "Unexpected message in 'lifespan' protocol" in errors(json_logs)[0]["message"]


def test_startup_exception_is_an_error_with_traceback_and_auto_serves_on(
    make_handler: Any, json_logs: Any
) -> None:
    handler = make_handler(with_lifespan(raising_startup))
    assert invoke(handler)["statusCode"] == 200
    (error,) = errors(json_logs)
    assert "startup raised ConnectionError" in error["message"]
    assert "serving requests without lifespan (lifespan='auto')" in error["message"]
    assert "Traceback" in error["exc_info"] and "cache unreachable" in error["exc_info"]
    assert invoke(handler)["statusCode"] == 200  # later invocations: no new attempt, no log
    assert len(errors(json_logs)) == 1


def test_startup_exception_with_lifespan_on_fails_the_invocation(
    make_handler: Any, json_logs: Any
) -> None:
    handler = make_handler(with_lifespan(raising_startup), lifespan="on")
    with pytest.raises(LifespanFailure, match="startup raised ConnectionError: cache unreachable"):
        invoke(handler)
    (error,) = errors(json_logs)
    assert "the invocation fails (lifespan='on')" in error["message"]
    assert "cache unreachable" in error["exc_info"]


def test_app_without_lifespan_support_is_info_in_auto_and_an_error_in_on(
    make_handler: Any, json_logs: Any
) -> None:
    assert invoke(make_handler(with_lifespan(rejects_the_scope)))["statusCode"] == 200
    assert errors(json_logs) == []
    assert any("appears unsupported" in r["message"] for r in json_logs.records)
    with pytest.raises(LifespanFailure, match="raised ValueError on the lifespan scope"):
        invoke(make_handler(with_lifespan(rejects_the_scope), lifespan="on"))


def test_returning_before_startup_is_unsupported(make_handler: Any) -> None:
    async def returns(scope: Any, receive: Any, send: Any) -> None:
        return None

    assert invoke(make_handler(with_lifespan(returns)))["statusCode"] == 200
    with pytest.raises(LifespanFailure, match="returned without completing startup"):
        invoke(make_handler(with_lifespan(returns), lifespan="on"))


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_reported_startup_failure_fails_and_the_next_invocation_retries(
    mode: str, make_handler: Any, json_logs: Any
) -> None:
    handler = make_handler(with_lifespan(reports_failure), lifespan=mode)
    for _ in range(2):  # each attempt fails on its own; the waiting app task is not leaked
        with pytest.raises(LifespanFailure, match="no API key configured") as caught:
            invoke(handler)
    assert isinstance(caught.value, MangumLifespanFailure)  # `except` clauses keep working
    assert isinstance(caught.value, LifespanError)
    assert [t for t in asyncio.all_tasks(handler.loop) if not t.done()] == []
    assert "no API key configured" in errors(json_logs)[0]["message"]


def test_lifespan_off_runs_no_lifespan_and_adds_no_state(make_handler: Any) -> None:
    calls: dict[str, int] = {}
    seen: list[dict[str, Any]] = []
    app = with_lifespan(raising_startup, seen)
    invoke(make_handler(app, lifespan="off"))
    assert "state" not in seen[0]
    handler = make_handler(probe_app(calls), lifespan="off")
    assert handler(load_event(EVENT), None)["statusCode"] == 200
    handler.shutdown()
    assert calls == {}


def test_lifespan_on_with_a_working_app_runs_once_and_shares_state(make_handler: Any) -> None:
    calls: dict[str, int] = {}
    handler = make_handler(probe_app(calls), lifespan="on")
    for _ in range(3):
        assert handler(load_event(EVENT), None)["statusCode"] == 200
    assert calls == {"startup": 1}
    handler.shutdown()
    assert calls == {"startup": 1, "shutdown": 1}


def test_shutdown_failure_is_logged_not_raised(make_handler: Any, json_logs: Any) -> None:
    async def failing_shutdown(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

    handler = make_handler(with_lifespan(failing_shutdown))
    assert invoke(handler)["statusCode"] == 200
    handler.shutdown()
    assert any("flush failed" in r["message"] for r in json_logs.records)


def test_fastapi_startup_failure_is_logged_once(make_handler: Any, json_logs: Any) -> None:
    """Starlette reports lifespan.startup.failed and then re-raises: one ERROR line, not two."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        raise RuntimeError("model registry unreachable")
        yield

    handler = make_handler(FastAPI(lifespan=lifespan))
    with pytest.raises(LifespanFailure, match="model registry unreachable"):
        invoke(handler)
    (error,) = errors(json_logs)
    assert "app startup failed" in error["message"]
    assert "model registry unreachable" in error["message"]  # Starlette's traceback text


def test_an_invocation_after_shutdown_starts_the_app_again(make_handler: Any) -> None:
    calls: dict[str, int] = {}
    handler = make_handler(probe_app(calls))
    assert handler(load_event(EVENT), None)["statusCode"] == 200
    handler.shutdown()
    assert handler(load_event(EVENT), None)["statusCode"] == 200
    assert calls == {"startup": 2, "shutdown": 1}
