"""No secret value reaches a log line or a client, on any path, at DEBUG.

The real ``aiservice serve`` process runs with ``logging.level: DEBUG`` and the access log
on, configured with every kind of secret: client API keys (``secret://`` references and a
literal admin key), a per-key rate limit, a provider API key, a Redis password, a step's
bearer token and a webhook signing secret. A loopback upstream echoes the credentials it
receives into its error bodies, as careless (or helpful) upstreams do. The test drives
every path that touches a secret — wrong and right keys, a rate-limit rejection, upstream
errors carrying the key, a flow whose step fails with the token in its body and a signed
webhook — then reads the process's whole output (uvicorn's lines, startup and shutdown
included) and every response body, and looks for each secret in its raw, JSON-escaped,
base64 and URL-encoded forms.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aiservice import create_app
from tests.cache.redis_server import redis_process
from tests.conftest import MakeSettings
from tests.support.servers import serve_app

from .service_process import report_numbers, serve_process

pytestmark = pytest.mark.slow

# Characters that change under URL and JSON encoding, so every form is a distinct string.
CLIENT_KEY = "sk-client/K3y+with=odd&chars"
LIMITED_KEY = "sk-limited-0a1b2c3d4e5f"
ADMIN_KEY = "adm-literal-Zq9xW8vU7t"  # a literal in the config file, not a reference
UPSTREAM_KEY = "sk-upstream/Pr0v1der+Key=="
REDIS_PASSWORD = "redis-pw:with@signs/and+more"
STEP_TOKEN = "tok-step-Bearer/Value+42"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-signing-key-for-redaction").decode()

SECRETS = {
    "CLIENT_KEY": CLIENT_KEY,
    "LIMITED_KEY": LIMITED_KEY,
    "ADMIN_KEY": ADMIN_KEY,
    "UPSTREAM_KEY": UPSTREAM_KEY,
    "REDIS_PASSWORD": REDIS_PASSWORD,
    "STEP_TOKEN": STEP_TOKEN,
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
}
ENVIRON = {k: v for k, v in SECRETS.items() if k != "ADMIN_KEY"}
# LogRecord attributes that are not extras (``extra=`` fields are checked as well).
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def forms(secret: str) -> dict[str, str]:
    """The ways a secret can be written into a log line or a body."""
    raw = secret.encode()
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "url": urllib.parse.quote(secret, safe=""),
        "url_plus": urllib.parse.quote_plus(secret),
    }


def leaks(text: str) -> list[str]:
    return [
        f"{name} ({form})"
        for name, secret in SECRETS.items()
        for form, value in forms(secret).items()
        if value in text
    ]


# -- a loopback upstream that echoes credentials back --------------------------------------


def _credentials(request: Request) -> str:
    return f"authorization={request.headers.get('authorization')!s}"


async def chat(request: Request) -> Response:
    body = await request.json()
    text = str(body["messages"][-1]["content"])
    if text == "upstream-401":  # what OpenAI does with a wrong key, but echoing it whole
        message = f"Incorrect API key provided: {request.headers.get('authorization')}"
        error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
        return JSONResponse({"error": error}, status_code=401)
    if text == "upstream-500":  # a plain-text error page with the request's headers
        return PlainTextResponse(f"internal error; {_credentials(request)}", status_code=500)
    if text == "upstream-400-encoded":  # the key as it travels in URLs and Basic auth
        key = (request.headers.get("authorization") or "").removeprefix("Bearer ")
        message = (
            f"invalid request to /v1/chat?key={urllib.parse.quote(key, safe='')}"
            f" (basic {base64.b64encode(key.encode()).decode()})"
        )
        return JSONResponse({"error": {"message": message}}, status_code=400)
    if text == "upstream-429":
        return JSONResponse(
            {"error": {"message": f"slow down {_credentials(request)}"}},
            status_code=429,
            headers={"retry-after": "0"},
        )
    return JSONResponse(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "fine"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )


async def failing_function(request: Request) -> Response:
    return PlainTextResponse(f"step rejected: {_credentials(request)}", status_code=400)


async def hook(request: Request) -> Response:
    await request.body()
    return PlainTextResponse("ok")


UPSTREAM = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/fn/leaky", failing_function, methods=["POST"]),
        Route("/hook", hook, methods=["POST"]),
    ]
)


def config(upstream: str, redis_url: str) -> dict[str, Any]:
    return {
        "logging": {"level": "DEBUG", "format": "json", "access_log": True},
        "auth": {
            "api_keys": ["secret://env/CLIENT_KEY"],
            "admin_keys": [ADMIN_KEY],
            "keys": {
                "limited": {
                    "key": "secret://env/LIMITED_KEY",
                    "limits": {"requests_per_minute": 1},
                }
            },
        },
        "providers": {
            "up": {
                "type": "openai",
                "base_url": upstream + "/v1",
                "api_key": "secret://env/UPSTREAM_KEY",
                "max_retries": 1,
                "retry_backoff": 0.01,
                "failure_threshold": 100,  # the error paths below must all reach it
            }
        },
        "models": {"chat": [{"provider": "up", "model": "gpt-test"}]},
        "cache": {
            "backend": "redis",
            "url": redis_url,
            "password": "secret://env/REDIS_PASSWORD",
            "timeout_ms": 500,
        },
        "orchestrator": {"ssrf_allowlist": ["127.0.0.1"]},
        "flows": {
            "leaky": {
                "steps": {
                    "s": {
                        "url": upstream + "/fn/leaky",
                        "auth": {"type": "bearer", "token": "secret://env/STEP_TOKEN"},
                        "retry": {"max_attempts": 1},
                    }
                },
                "webhook": {"url": upstream + "/hook", "secret": "secret://env/WEBHOOK_SECRET"},
            }
        },
    }


def chat_body(text: str) -> dict[str, Any]:
    return {"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": text}]}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def drive(url: str) -> list[httpx.Response]:
    """Every path that touches a secret; returns the responses (all must be as expected)."""
    responses: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=30) as client:

        def send(method: str, path: str, expected: int, **kwargs: Any) -> None:
            response = client.request(method, path, **kwargs)
            assert response.status_code == expected, (path, response.text)
            responses.append(response)

        chat_path = "/v1/chat/completions"
        send("POST", chat_path, 401, json=chat_body("hi"), headers=bearer(CLIENT_KEY[:-1]))
        send("POST", chat_path, 401, json=chat_body("hi"), headers=bearer(CLIENT_KEY + "x"))
        send("GET", "/v1/models", 401, headers={"x-api-key": UPSTREAM_KEY})
        send("POST", chat_path, 200, json=chat_body("hello"), headers=bearer(CLIENT_KEY))
        send("POST", chat_path, 200, json=chat_body("hello"), headers=bearer(CLIENT_KEY))  # hit
        send("POST", chat_path, 502, json=chat_body("upstream-401"), headers=bearer(CLIENT_KEY))
        send("POST", chat_path, 502, json=chat_body("upstream-500"), headers=bearer(CLIENT_KEY))
        send("POST", chat_path, 429, json=chat_body("upstream-429"), headers=bearer(CLIENT_KEY))
        encoded = chat_body("upstream-400-encoded")
        send("POST", chat_path, 400, json=encoded, headers=bearer(CLIENT_KEY))
        send("GET", "/v1/models?api_key=" + urllib.parse.quote(CLIENT_KEY, safe=""), 401)
        # A client that puts a key where the model name goes: the 404 quotes the name.
        for key in (ADMIN_KEY, CLIENT_KEY):
            send("POST", chat_path, 404, json={**chat_body("x"), "model": key}, headers=bearer(key))
        send("POST", chat_path, 200, json=chat_body("once"), headers=bearer(LIMITED_KEY))
        send("POST", chat_path, 429, json=chat_body("twice"), headers=bearer(LIMITED_KEY))
        send("GET", "/v1/models", 200, headers={"x-api-key": ADMIN_KEY})
        send("POST", "/admin/models/pull", 403, json={}, headers=bearer(CLIENT_KEY))
        send("POST", "/admin/models/pull", 422, json={}, headers=bearer(ADMIN_KEY))
        send("POST", "/orchestrate/leaky", 502, json={}, headers=bearer(CLIENT_KEY))
        send("GET", "/health/ready", 200)
        send("GET", "/metrics", 200)
    return responses


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with serve_app(UPSTREAM) as url:
        yield url


def test_no_secret_in_any_log_line_or_response(
    upstream_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with redis_process("--requirepass", REDIS_PASSWORD) as redis:
        settings = config(upstream_url, redis.url)
        with serve_process(tmp_path, settings, env=ENVIRON) as service:
            responses = drive(service.url)
        output = service.output()

    # The paths ran for real (so an empty log could not pass): DEBUG lines, the access
    # log, uvicorn's own lines, the upstream errors and the rate limit.
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {r["severity"] for r in records} >= {"INFO", "WARNING"}
    assert any(r["logger"].startswith("uvicorn") for r in records)
    assert sum(1 for r in records if r.get("path") == "/v1/chat/completions") >= 9
    assert "[REDACTED]" in output  # the upstream's echo was there, and masked
    statuses = [r.status_code for r in responses]
    assert statuses.count(429) == 2 and statuses.count(401) == 4

    report_numbers(
        request,
        requests=len(responses),
        log_lines=len(output.splitlines()),
        secret_forms=sum(len(set(forms(s).values())) for s in SECRETS.values()),
        leaks=len(leaks(output)),
    )
    assert not leaks(output), f"secrets in the service's output: {leaks(output)}"
    for response in responses:
        body = response.text + json.dumps(dict(response.headers))
        # Quoting back what the client itself sent (a bad model name) is no leak.
        sent = response.request.content.decode() + str(response.request.url)
        echoed = {name.split()[0] for name in leaks(sent)}
        found = [x for x in leaks(body) if x.split()[0] not in echoed]
        assert not found, (response.request.url, found, body[:500])


class EveryRecord(logging.Handler):
    """Renders every record plainly, as a host application's own handler would: no
    redacting formatter in between, so a secret must already be masked in the record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.loggers: set[str] = set()
        # The test's own HTTP client logs the requests it sends (keys in query strings
        # included) from this thread; the servers run in threads of their own.
        self.client_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.client_thread:
            return
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        line = f"{record.name} {record.levelname} {record.getMessage()} {extras!r}"
        if record.exc_info:
            line += " " + logging.Formatter().formatException(record.exc_info)
        self.lines.append(line)
        self.loggers.add(record.name)


@pytest.fixture
def every_logger_at_debug() -> Iterator[EveryRecord]:
    handler = EveryRecord()
    root = logging.getLogger()
    names = ("aiservice", "uvicorn", "uvicorn.error", "aiohttp", "redis", "asyncio")
    levels = {name: logging.getLogger(name).level for name in names}
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_no_secret_in_any_record_of_any_logger_in_process(
    upstream_url: str,
    make_settings: MakeSettings,
    every_logger_at_debug: EveryRecord,
    request: pytest.FixtureRequest,
) -> None:
    """The app embedded in a host whose logging is not ours: every logger at DEBUG."""
    with redis_process("--requirepass", REDIS_PASSWORD) as redis:
        settings = make_settings(config(upstream_url, redis.url), ENVIRON)
        app = create_app(settings, configure_logs=False)
        with serve_app(app) as url:
            for name in ("uvicorn", "uvicorn.error"):  # serve_app sets them to WARNING
                logging.getLogger(name).setLevel(logging.DEBUG)
            drive(url)

    captured = every_logger_at_debug
    # The service's upstream calls (aiohttp) log nothing per request; our own loggers do.
    assert {"aiservice.http", "aiservice.orchestrator"} <= captured.loggers
    assert any("DEBUG" in line for line in captured.lines)
    leaked = [(line[:300], leaks(line)) for line in captured.lines if leaks(line)]
    report_numbers(
        request,
        records=len(captured.lines),
        loggers=len(captured.loggers),
        leaks=len(leaked),
    )
    assert not leaked, leaked


def test_encoded_forms_of_a_registered_secret_are_masked_too() -> None:
    from aiservice.security.redact import redact, register_secret

    register_secret(UPSTREAM_KEY)
    line = " ".join(forms(UPSTREAM_KEY).values())
    assert redact(line) == " ".join(["[REDACTED]"] * len(forms(UPSTREAM_KEY)))
    assert redact("sk-upstream and Pr0v1der alone") == "sk-upstream and Pr0v1der alone"
