"""Tracing on Lambda: without a W3C ``traceparent`` the server span joins the invocation's
X-Ray trace (``_X_AMZN_TRACE_ID``), as the ADOT layer's ``AwsXRayLambdaPropagator`` does.

Real invocations of adapters/aws_lambda.py in a fresh process (the Lambda runtime sets
``_X_AMZN_TRACE_ID`` per invocation; the probe does the same), spans exported to the
loopback OTLP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiservice.observability import tracing
from tests.observability.otlp_receiver import OtlpReceiver, otlp_receiver
from tests.platforms.procs import REPO, clean_env

from .conftest import chat_event

XRAY_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
XRAY_TRACE = "5759e988bd862e3fe1be46a994272793"  # the root without version and dashes
XRAY_PARENT = "53995c3f42cd8ad8"
UNSAMPLED_ROOT = "1-5759e989-00000000000000000000abcd"
W3C_TRACE, W3C_PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"

PROBE = """
import json, os, sys
sys.path.insert(0, {adapters!r})
import aws_lambda


class Context:
    aws_request_id = "req-0001"


out = []
for header, event in json.load(open({cases!r})):
    os.environ["_X_AMZN_TRACE_ID"] = header  # what the runtime does before each invocation
    result = aws_lambda.handler(event, Context())
    out.append([result["statusCode"], result["headers"].get("x-request-id")])
out.append("opentelemetry.propagators.aws" in sys.modules)
print(json.dumps(out))
"""


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        yield receiver


def invoke(tmp_path: Path, otlp: OtlpReceiver, cases: list[Any], enabled: bool) -> list[Any]:
    """Each case (``_X_AMZN_TRACE_ID``, event) as one invocation of the adapter's handler."""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    code = PROBE.format(adapters=str(REPO / "adapters"), cases=str(path))
    env = clean_env(
        AISERVICE_TRACING__ENABLED=str(enabled).lower(),
        AISERVICE_TRACING__EXPORTER__ENDPOINT=otlp.url,
        AISERVICE_METRICS__SINK="none",
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out: list[Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def with_traceparent(trace_id: str, parent: str, flags: str = "01") -> dict[str, Any]:
    event = chat_event()
    event["headers"]["traceparent"] = f"00-{trace_id}-{parent}-{flags}"
    return event


@pytest.mark.slow
def test_the_server_span_joins_the_xray_trace_unless_a_traceparent_is_sent(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    cases = [
        [f"Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1;Lineage=1:0a1b2c3d:0", chat_event()],
        [f"Root={UNSAMPLED_ROOT};Parent={XRAY_PARENT};Sampled=0", chat_event()],
        [
            f"Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1",
            with_traceparent(W3C_TRACE, W3C_PARENT),
        ],
    ]
    *answers, propagator_loaded = invoke(tmp_path, otlp, cases, enabled=True)
    assert [status for status, _ in answers] == [200, 200, 200]
    assert propagator_loaded

    # 1. The X-Ray trace: the server span's parent is Lambda's segment, on the remote side.
    joined = otlp.trace(XRAY_TRACE)
    (server,) = [s for s in joined if s.kind == "server"]
    assert server.parent_id == XRAY_PARENT
    assert {"POST /v1/chat/completions", "chat fake"} <= {s.name for s in joined}
    children = [s for s in joined if s is not server]
    assert children and all(s.parent_id == server.span_id for s in children)
    # The request context took the same trace: its id is the joined trace id.
    assert answers[0][1] == XRAY_TRACE

    # 2. Sampled=0 is honoured: no span of that trace is recorded.
    assert otlp.trace(UNSAMPLED_ROOT[2:].replace("-", "")) == []
    assert answers[1][1] == UNSAMPLED_ROOT[2:].replace("-", "")

    # 3. A caller's W3C traceparent wins over X-Ray.
    (w3c_server,) = [s for s in otlp.trace(W3C_TRACE) if s.kind == "server"]
    assert w3c_server.parent_id == W3C_PARENT
    servers = [s for s in otlp.spans if s.kind == "server"]
    assert len(servers) == 2  # case 1 and case 3; case 3 added nothing to the X-Ray trace


@pytest.mark.slow
def test_tracing_off_imports_no_propagator(tmp_path: Path, otlp: OtlpReceiver) -> None:
    header = f"Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1"
    *answers, propagator_loaded = invoke(tmp_path, otlp, [[header, chat_event()]], enabled=False)
    assert answers[0][0] == 200 and not propagator_loaded
    assert otlp.spans == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            f"Root={XRAY_ROOT};Parent={XRAY_PARENT};Sampled=1",
            f"00-{XRAY_TRACE}-{XRAY_PARENT}-01",
        ),
        (f"Parent={XRAY_PARENT};Root={XRAY_ROOT};Sampled=0", f"00-{XRAY_TRACE}-{XRAY_PARENT}-00"),
        (f"Root={XRAY_ROOT};Parent={XRAY_PARENT}", f"00-{XRAY_TRACE}-{XRAY_PARENT}-00"),
        (f"Root={XRAY_ROOT};Sampled=1", None),  # no parent: nothing to join
        (f"Root=1-5759e988-bd86;Parent={XRAY_PARENT};Sampled=1", None),
        (f"Root={XRAY_ROOT};Parent=xyz;Sampled=1", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_the_xray_header_as_a_traceparent(
    header: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert tracing.xray_traceparent() == expected
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert tracing.xray_traceparent() is None
