"""``aiservice check`` asks every dependency: real loopback upstreams of every provider
type, the real Redis, SQS on a moto server, DNS for flow step hosts."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiservice.cli import main
from tests.providers.contract import Failure
from tests.providers.fixtures import anthropic_upstream, bedrock_upstream, gemini_upstream
from tests.providers.fixtures.upstream import Upstream, upstream_app
from tests.support.llm_servers import PRIMARY_KEY, Upstreams, upstream_servers, upstreams
from tests.support.servers import free_port, serve_app

__all__ = ["upstream_servers", "upstreams"]  # fixtures used here

REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Wire:
    """The Anthropic, Gemini and Bedrock wire servers."""

    anthropic: Upstream
    anthropic_url: str
    gemini: Upstream
    gemini_url: str
    bedrock_url: str


@pytest.fixture(scope="module")
def wire_servers() -> Iterator[Wire]:
    anthropic, gemini, bedrock = Upstream(), Upstream(), Upstream()
    gemini_echo = gemini_upstream.make_echo(gemini_upstream.TokenEndpoint())
    with (
        serve_app(
            upstream_app(anthropic, anthropic_upstream.echo, anthropic_upstream.error_body)
        ) as anthropic_url,
        serve_app(upstream_app(gemini, gemini_echo, gemini_upstream.error_body)) as gemini_url,
        serve_app(
            upstream_app(bedrock, bedrock_upstream.echo, bedrock_upstream.error_body)
        ) as bedrock_url,
    ):
        yield Wire(anthropic, anthropic_url, gemini, gemini_url, bedrock_url)


@pytest.fixture
def wire(wire_servers: Wire) -> Iterator[Wire]:
    yield wire_servers
    wire_servers.anthropic.reset()
    wire_servers.gemini.reset()


@pytest.fixture(scope="module")
def sqs_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def queue_url(sqs_endpoint: str) -> str:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint)
    url: str = client.create_queue(QueueName=f"check-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return url


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith(("AISERVICE_", "AWS_")) or k == "PORT"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PRIMARY_KEY", PRIMARY_KEY)
    monkeypatch.chdir(tmp_path)
    # Bedrock shares one boto3 session per process, holding the credentials it first saw:
    # start from none and give back whatever other tests had.
    monkeypatch.setattr("aiservice.providers.bedrock._session", None)


def config(u: Upstreams, wire: Wire, queue_url: str, sqs_endpoint: str) -> dict[str, Any]:
    step_base = u.primary_url  # any host that resolves: DNS is what is checked
    return {
        "providers": {
            "primary": {
                "type": "openai",
                "base_url": u.primary_url + "/v1",
                "api_key": "secret://env/PRIMARY_KEY",
            },
            "local": {"type": "ollama", "base_url": u.ollama_url},
            "claude": {"type": "anthropic", "base_url": wire.anthropic_url, "api_key": "ak-1"},
            "gem": {"type": "gemini", "base_url": wire.gemini_url, "api_key": "gk-1"},
            "rock": {"type": "bedrock", "base_url": wire.bedrock_url, "region": "us-east-1"},
            "offline": {"type": "fake"},
        },
        "models": {"chat": [{"provider": "primary", "model": "gpt-test"}]},
        "cache": {"backend": "redis", "url": REDIS, "namespace": f"check-{uuid.uuid4().hex}"},
        "secrets": {"endpoint_url": sqs_endpoint},
        "functions": {"scorer": step_base.replace("127.0.0.1", "localhost") + "/score"},
        "orchestrator": {"queue_url": queue_url, "sqs_region": "us-east-1"},
        "flows": {
            "match": {
                "steps": {
                    "literal": {"url": step_base + "/embed"},
                    "from_settings": {"url": "${settings.functions.scorer}"},
                    "from_input": {"url": "${input.callback}"},  # unknown until a request
                }
            }
        },
    }


def check(data: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    Path("aiservice.yaml").write_text(yaml.safe_dump(data))
    code = main(["check", "--json", *args])
    out, err = capsys.readouterr()
    rows = {row["check"]: row for row in json.loads(out)}
    return code, rows, err


def test_every_dependency_answers(
    upstreams: Upstreams,
    wire: Wire,
    queue_url: str,
    sqs_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, rows, err = check(config(upstreams, wire, queue_url, sqs_endpoint), capsys)
    assert code == 0, json.dumps(rows, indent=1)
    expected = {
        "provider primary (openai)": "2 models",
        "provider local (ollama)": "models",
        "provider claude (anthropic)": "authenticated",
        "provider gem (gemini)": "authenticated",
        "provider rock (bedrock)": "models",
        "provider offline (fake)": "built-in",
        "state redis": "answered",
        "queue": "0 messages waiting",
        "dns localhost": "flows: match",
        "dns 127.0.0.1": "127.0.0.1",
    }
    for name, detail in expected.items():
        assert rows[name]["status"] == "ok", rows[name]
        assert detail in rows[name]["detail"], rows[name]
    assert not any("input" in name for name in rows)
    # The probes were real authenticated calls.
    seen = upstreams.primary.requests[-1]
    assert seen.path.endswith("/models")
    assert seen.headers["authorization"] == f"Bearer {PRIMARY_KEY}"
    assert wire.anthropic.last.headers["x-api-key"] == "ak-1"
    assert PRIMARY_KEY not in json.dumps(rows) and err == ""


def test_every_failing_dependency_is_named_and_exits_1(
    upstreams: Upstreams,
    wire: Wire,
    queue_url: str,
    sqs_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = config(upstreams, wire, queue_url + "-missing", sqs_endpoint)
    upstreams.primary.inject(Failure(status=401, message=f"Incorrect API key {PRIMARY_KEY}"))
    wire.anthropic.inject(Failure(status=401, message="invalid x-api-key"))
    data["providers"]["local"]["base_url"] = f"http://127.0.0.1:{free_port()}"
    data["cache"]["url"] = f"redis://127.0.0.1:{free_port()}/0"
    data["flows"]["match"]["steps"]["literal"]["url"] = "http://ml-nowhere.invalid/embed"
    code, rows, err = check(data, capsys)
    assert code == 1
    failing = [
        "provider primary (openai)",
        "provider claude (anthropic)",
        "provider local (ollama)",
        "state redis",
        "queue",
        "dns ml-nowhere.invalid",
    ]
    for name in failing:
        assert rows[name]["status"] == "fail", rows[name]
        assert name in err
    assert "401" in rows["provider primary (openai)"]["detail"]
    assert "does not resolve" in rows["dns ml-nowhere.invalid"]["detail"]
    assert "NonExistentQueue" in rows["queue"]["detail"] or "exist" in rows["queue"]["detail"]
    for name in ("provider gem (gemini)", "provider rock (bedrock)", "dns localhost"):
        assert rows[name]["status"] == "ok", rows[name]
    assert PRIMARY_KEY not in json.dumps(rows) + err


def test_checks_run_concurrently_each_with_its_timeout(
    upstreams: Upstreams,
    wire: Wire,
    queue_url: str,
    sqs_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upstreams.primary.inject(Failure(kind="slow"))  # answers after 6 s
    wire.anthropic.inject(Failure(kind="slow"))  # after 1.5 s
    wire.gemini.inject(Failure(kind="slow"))
    started = time.monotonic()
    code, rows, _ = check(
        config(upstreams, wire, queue_url, sqs_endpoint), capsys, "--timeout", "1"
    )
    elapsed = time.monotonic() - started
    assert code == 1
    for name in (
        "provider primary (openai)",
        "provider claude (anthropic)",
        "provider gem (gemini)",
    ):
        assert rows[name] == {"check": name, "status": "fail", "detail": "no answer within 1s"}
    assert rows["state redis"]["status"] == "ok"
    assert elapsed < 2.5  # three 1 s timeouts, in parallel


def test_offline_makes_no_call(
    upstreams: Upstreams,
    wire: Wire,
    queue_url: str,
    sqs_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = config(upstreams, wire, queue_url + "-missing", sqs_endpoint)
    data["cache"]["url"] = f"redis://127.0.0.1:{free_port()}/0"
    code, rows, _ = check(data, capsys, "--offline")
    assert code == 0, json.dumps(rows, indent=1)
    assert set(rows) == {"config", "secret secret://env/PRIMARY_KEY", "llm", "flows"}
    assert upstreams.primary.requests == [] and wire.anthropic.received == []


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_timeout_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "--timeout", value])
    assert info.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


def test_a_hanging_blocking_client_is_cut_at_the_timeout(
    upstreams: Upstreams,
    wire: Wire,
    queue_url: str,
    sqs_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """boto3 blocks a thread; the check must not wait for its own (longer) timeouts."""
    import socket

    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        data = config(upstreams, wire, queue_url, endpoint)
        started = time.monotonic()
        code, rows, err = check(data, capsys, "--timeout", "1")
        elapsed = time.monotonic() - started
    assert code == 1 and "queue" in err
    assert rows["queue"]["detail"] == "no answer within 1s"
    assert elapsed < 3
