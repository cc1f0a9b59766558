"""Literal vs built URLs: which step and webhook origins the configuration fixes."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.orchestrator.expr import compile_template
from aiservice.orchestrator.loader import load_flows
from aiservice.orchestrator.origin import Origin, literal_origin

from ..conftest import MakeSettings

SETTINGS = {
    "functions": {
        "embed": "http://10.0.0.5:9001/embed",
        "base": "https://fn.internal",
        "port": 8443,
        "nested": {"url": "http://127.0.0.1:9002/x"},
        "not_a_url": 42,
    },
    "service": {"name": "svc"},
}


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://fn.example/x", Origin("https", "fn.example", 443)),
        ("http://127.0.0.1:9001/fn", Origin("http", "127.0.0.1", 9001)),
        ("http://[::1]:9001/fn", Origin("http", "::1", 9001)),
        ("http://FN.Example.:80", Origin("http", "fn.example.", 80)),
        ("http://u:p@fn.example/", Origin("http", "fn.example", 80)),
        # Templates after the authority is closed can only change path and query.
        ("https://fn.example/${input.path}", Origin("https", "fn.example", 443)),
        ("https://fn.example/x?q=${steps.a.output.q}", Origin("https", "fn.example", 443)),
        ("https://fn.example#${input.frag}", Origin("https", "fn.example", 443)),
        # settings.functions is operator configuration, folded in at load time.
        ("${settings.functions.embed}", Origin("http", "10.0.0.5", 9001)),
        ("${settings.functions.nested.url}", Origin("http", "127.0.0.1", 9002)),
        ("${settings.functions.base}/v1/${input.model}", Origin("https", "fn.internal", 443)),
        ("https://fn.internal:${settings.functions.port}/x", Origin("https", "fn.internal", 8443)),
    ],
)
def test_literal_origins(url: str, origin: Origin) -> None:
    assert literal_origin(compile_template(url), SETTINGS) == origin


@pytest.mark.parametrize(
    "url",
    [
        "${input.url}",
        "${steps.s1.output.next}",  # laundering through a step output
        "${steps.s1.output.next}/path",
        "${secrets.env.FN_URL}",  # not written in the configuration
        "http://${input.host}/x",
        "http://fn.example${input.suffix}/x",  # ".evil.example" or "@127.0.0.1"
        "http://fn.example:${input.port}/x",
        "${input.scheme}://fn.example/x",
        "http://${input.user}@fn.example/x",
        "http://fn.example\\${input.x}",
        "${settings.functions.base}${input.rest}",  # no literal '/' closes the authority
        "${settings.functions.not_a_url}",
        "${settings.functions.embed ?? input.url}",
        "${input.url ?? settings.functions.embed}",
        "ftp://fn.example/x",
        "http://%6c%6f%63%61%6c%68%6f%73%74/",
        "not a url",
        "",
    ],
)
def test_built_urls_have_no_literal_origin(url: str) -> None:
    assert literal_origin(compile_template(url), SETTINGS) is None


def test_literal_origin_rules_cover_exactly_host_and_port() -> None:
    rule = Origin("http", "0x7f000001", 9001).rule()
    assert str(rule.network) == "127.0.0.1/32" and rule.port == 9001
    assert Origin("https", "fn.internal.", 443).rule().host == "fn.internal"


def _flow(step_url: str, webhook: str | None = None) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "steps": {
            "s1": {"url": "https://fn.example/s1"},
            "s2": {"url": step_url, "depends_on": ["s1"]},
        }
    }
    if webhook is not None:
        flow["webhook"] = {"url": webhook}
    return flow


@pytest.mark.parametrize(
    ("step_url", "guarded"),
    [
        ("https://fn.example/${steps.s1.output.path}", False),
        ("${steps.s1.output.next}", True),
        ("${input.url}", True),
        ("${settings.functions.embed}", False),
    ],
)
def test_loader_marks_built_step_urls_guarded(
    make_settings: MakeSettings, step_url: str, guarded: bool
) -> None:
    settings = make_settings({"flows": {"f": _flow(step_url)}, "functions": SETTINGS["functions"]})
    flows, errors = load_flows(settings)
    assert errors == []
    assert flows["f"].steps["s2"].guarded is guarded
    assert not flows["f"].steps["s1"].guarded


@pytest.mark.parametrize(
    ("webhook", "guarded"),
    [
        ("${input.callback_url}", True),
        ("${steps.s1.output.callback}", True),
        ("https://hooks.example/${input.id}", False),
    ],
)
def test_loader_marks_built_webhook_urls_guarded(
    make_settings: MakeSettings, webhook: str, guarded: bool
) -> None:
    flows, errors = load_flows(make_settings({"flows": {"f": _flow(_URL, webhook)}}))
    assert errors == []
    assert flows["f"].webhook_guarded is guarded


_URL = "https://fn.example/s2"


def test_flow_lists_its_literal_origins(make_settings: MakeSettings) -> None:
    flow = _flow("http://127.0.0.1:9001/s2", "https://hooks.example/x")
    flows, _ = load_flows(make_settings({"flows": {"f": flow}}))
    assert flows["f"].origins() == {
        Origin("https", "fn.example", 443),
        Origin("http", "127.0.0.1", 9001),
        Origin("https", "hooks.example", 443),
    }


@pytest.mark.parametrize(
    "url", ["ftp://fn.example/x", "fn.example/x", "http://[::1/", "http://fn.example:99999/"]
)
def test_a_literal_url_that_is_no_http_url_fails_at_load(
    make_settings: MakeSettings, url: str
) -> None:
    _, errors = load_flows(make_settings({"flows": {"f": _flow(url)}}))
    assert [str(e) for e in errors] == [
        f"flow 'f', step 's2', field 'url': {url!r} is not an absolute http(s) URL"
    ]
