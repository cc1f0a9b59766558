"""A generated corpus of malformed requests, every endpoint x every mutation.

Each request is sent with a valid key (so it reaches body handling) to the real app
in-process. Whatever it is, the answer must be a 4xx (never a 5xx) with the JSON error
envelope. The corpus size is asserted so a change in the generator is noticed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from aiservice import create_app

from ..conftest import MakeSettings
from .conftest import ADMIN_KEY, edge_config

JSON = "application/json"
DEPTH = 64

# (path, a valid body) for every endpoint that takes a JSON body.
BODY_ENDPOINTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/embeddings", {"model": "fake", "input": "hi"}),
    ("/admin/models/pull", {"model": "llama3", "stream": False}),
    ("/orchestrate/greet", {"name": "ada"}),
    ("/orchestrate/anything", {"free": "form"}),
]
GET_ENDPOINTS = ["/v1/models", "/v1/models/fake", "/executions/abc", "/metrics", "/health"]

Mutation = Callable[[dict[str, Any]], tuple[bytes, str | None]]


def _raw(text: str | bytes, content_type: str | None = JSON) -> tuple[bytes, str | None]:
    return (text.encode() if isinstance(text, str) else text), content_type


def _deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def _with(body: dict[str, Any], **fields: Any) -> str:
    return json.dumps({**body, **fields})


def _nest_field(body: dict[str, Any], key: str, value_json: str) -> str:
    """``body`` with ``key`` set to raw JSON text (which json.dumps cannot produce)."""
    return json.dumps(body)[:-1] + f', "{key}": {value_json}}}'


def _mutations() -> dict[str, Mutation]:
    big = "x" * 200_000  # within the 1 MiB body limit
    surrogates = ["\\ud800", "\\udfff", "\\ud83d", "\\ude00\\ud83d", "a\\udbffb"]
    muts: dict[str, Mutation] = {
        "empty": lambda b: _raw(b""),
        "whitespace": lambda b: _raw("   \n"),
        "truncated": lambda b: _raw(json.dumps(b)[:-3]),
        "trailing-garbage": lambda b: _raw(json.dumps(b) + "}"),
        "not-json": lambda b: _raw("model=fake&x=1"),
        "array": lambda b: _raw(json.dumps([b])),
        "string": lambda b: _raw('"hello"'),
        "number": lambda b: _raw("42"),
        "null": lambda b: _raw("null"),
        "nan": lambda b: _raw(_nest_field(b, "n", "NaN")),
        "infinity": lambda b: _raw(_nest_field(b, "n", "-Infinity")),
        "huge-float": lambda b: _raw(_nest_field(b, "n", "1e999999")),
        "huge-int": lambda b: _raw(_nest_field(b, "n", "9" * 1_000_000)),
        "long-int": lambda b: _raw(_nest_field(b, "n", "1" * 5000)),
        "duplicate-key": lambda b: _raw(_nest_field(b, next(iter(b)), '"again"')),
        "bad-utf8": lambda b: _raw(json.dumps(b).encode()[:-1] + b', "x": "\xff\xfe"}'),
        "overlong-utf8": lambda b: _raw(b'{"x": "\xc0\xaf"}'),
        "encoded-surrogate": lambda b: _raw(b'{"x": "\xed\xa0\x80"}'),
        "utf16": lambda b: _raw(json.dumps(b).encode("utf-16")),
        "bom": lambda b: _raw(b"\xef\xbb\xbf" + json.dumps(b).encode()),
        "nul-bytes": lambda b: _raw(b"\x00" * 100),
        "deep-array": lambda b: _raw(_nest_field(b, "deep", _deep(DEPTH + 1))),
        "deep-object": lambda b: _raw(_nest_field(b, "deep", '{"a":' * 100 + "1" + "}" * 100)),
        "very-deep": lambda b: _raw(_nest_field(b, "deep", _deep(100_000))),
        "deep-unclosed": lambda b: _raw("[" * 200_000),
        "deep-top": lambda b: _raw(_deep(5000, '{"a":', "}").replace('{"a":}', "1")),
        "huge-string": lambda b: _raw(_with(b, big=big)),
        "huge-key": lambda b: _raw(json.dumps({**b, big: 1})),
        "many-keys": lambda b: _raw(json.dumps({**b, **{f"k{i}": i for i in range(20_000)}})),
        "text-plain": lambda b: _raw(json.dumps(b), "text/plain"),
        "form": lambda b: _raw(json.dumps(b), "application/x-www-form-urlencoded"),
        "multipart": lambda b: _raw(json.dumps(b), "multipart/form-data; boundary=x"),
        "no-content-type": lambda b: _raw(json.dumps(b), None),
        "bogus-content-type": lambda b: _raw(json.dumps(b), ";;;/"),
        "xml": lambda b: _raw("<a/>", "application/xml"),
    }
    for i, escape in enumerate(surrogates):
        muts[f"surrogate-value-{i}"] = lambda b, e=escape: _raw(
            json.dumps(b)[:-1] + f', "s": "{e}"}}'
        )
        muts[f"surrogate-key-{i}"] = lambda b, e=escape: _raw(json.dumps(b)[:-1] + f', "{e}": 1}}')
        muts[f"surrogate-field-{i}"] = lambda b, e=escape: _raw(
            json.dumps({k: (f"@{e}" if isinstance(v, str) else v) for k, v in b.items()}).replace(
                f"@{e.replace(chr(92), chr(92) * 2)}", e
            )
        )
    return muts


def _wrong_types(body: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Every top-level field replaced by each value of another JSON type."""
    for key in body:
        for name, value in {
            "null": None,
            "int": 7,
            "float": 1.5,
            "bool": True,
            "str": "s",
            "list": [1, [2]],
            "obj": {"a": {}},
        }.items():
            if type(value) is not type(body[key]):
                yield f"type-{key}-{name}", json.dumps({**body, key: value}).encode()


_ODD_VALUES: dict[str, Any] = {
    "null": None,
    "int": -1,
    "float": 1e308,
    "bool": False,
    "str": "\u0000\u202e",
    "list": [[[]]],
    "obj": {"": {}},
    "long-str": "y" * 50_000,
    "surrogate": "\ud800",  # json.dumps writes it as the escape \ud800
}


def _nested(path: str) -> Iterator[tuple[str, bytes]]:
    """Wrong or odd values one level down, where the endpoint's model looks."""
    if path == "/v1/chat/completions":
        for field in ("role", "content", "name", "tool_calls", "tool_call_id"):
            for name, value in _ODD_VALUES.items():
                message = {"role": "user", "content": "hi", field: value}
                body = {"model": "fake", "messages": [message]}
                yield f"message-{field}-{name}", json.dumps(body).encode()
        for field in ("tools", "tool_choice", "response_format", "stop", "stream_options"):
            for name, value in _ODD_VALUES.items():
                body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
                yield f"field-{field}-{name}", json.dumps({**body, field: value}).encode()
    if path == "/v1/embeddings":
        for name, value in _ODD_VALUES.items():
            yield f"input-item-{name}", json.dumps({"model": "fake", "input": [value]}).encode()


def _semantic(path: str) -> Iterator[tuple[str, bytes]]:
    """Deep or odd values inside fields that are documented as free-form objects."""
    if path == "/v1/chat/completions":
        base = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        deep_schema = '{"type":"object","properties":{"a":' * 40 + "{}" + "}}" * 40
        yield (
            "deep-response-format",
            json.dumps(base).encode()[:-1]
            + (
                b', "response_format": {"type": "json_schema", "json_schema": {"schema": '
                + deep_schema.encode()
                + b"}}}"
            ),
        )
        yield (
            "deep-tool",
            json.dumps(base).encode()[:-1]
            + (
                b', "tools": [{"type": "function", "function": {"name": "f", "parameters": '
                + deep_schema.encode()
                + b"}}]}"
            ),
        )
        yield (
            "surrogate-content",
            (b'{"model": "fake", "messages": [{"role": "user", "content": "\\ud800"}]}'),
        )
        yield "surrogate-model", b'{"model": "\\udfff", "messages": []}'
        yield "empty-messages", json.dumps({**base, "messages": []}).encode()
        yield "stream-options", json.dumps({**base, "stream_options": {}}).encode()
        yield "tool-choice", json.dumps({**base, "tool_choice": "required"}).encode()
    if path == "/v1/embeddings":
        yield "token-arrays", json.dumps({"model": "fake", "input": [[1, 2]]}).encode()
        yield "empty-input", json.dumps({"model": "fake", "input": []}).encode()
        yield "surrogate-input", b'{"model": "fake", "input": ["ok", "\\ud800"]}'


# Well-formed but large: may be accepted (an open model keeps unknown fields).
MAY_ACCEPT = {"huge-string", "huge-key", "many-keys"}
# Accepts any JSON object, so only syntax-level mutations must be refused.
FREE_FORM = {"/orchestrate/anything"}

Case = tuple[str, str, bytes, str | None, bool]


def corpus() -> list[Case]:
    """(case id, path, body, content type, must be refused) of every malformed request."""
    cases: list[Case] = []
    mutations = _mutations()
    for path, body in BODY_ENDPOINTS:
        free = path in FREE_FORM
        for name, mutate in mutations.items():
            raw, content_type = mutate(body)
            refuse = name not in MAY_ACCEPT and not (free and name == "empty")
            cases.append((f"{path}:{name}", path, raw, content_type, refuse))
        for name, raw in [*_wrong_types(body), *_semantic(path)]:
            cases.append((f"{path}:{name}", path, raw, JSON, not free))
        for name, raw in _nested(path):  # some are valid (a null name): no 5xx is the rule
            cases.append((f"{path}:{name}", path, raw, JSON, False))
    return cases


def _assert_envelope(
    case_id: str, response: httpx.Response, failures: list[str], refuse: bool = True
) -> None:
    problem = None
    if response.status_code >= 500 or (refuse and response.status_code < 400):
        problem = f"status {response.status_code}"
    elif response.status_code < 400:
        return
    else:
        try:
            error = response.json()["error"]
            assert {"message", "type", "code", "param"} <= set(error)
        except Exception:
            problem = f"no envelope: {response.text[:80]!r}"
    if problem:
        failures.append(f"{case_id}: {problem}")


async def test_malformed_corpus_gets_4xx_envelopes(
    make_settings: MakeSettings, edge_function_url: str
) -> None:
    cases = corpus()
    assert len(cases) >= 400
    app = create_app(make_settings(edge_config(edge_function_url)), configure_logs=False)
    failures: list[str] = []
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for case_id, path, raw, content_type, refuse in cases:
                headers = {**auth, **({"content-type": content_type} if content_type else {})}
                response = await client.post(path, content=raw, headers=headers)
                _assert_envelope(case_id, response, failures, refuse)
            # Query/path garbage on the GET endpoints: odd characters, surrogates, huge values.
            for path in GET_ENDPOINTS:
                for suffix in ["%ff%fe", "%ed%a0%80", "x" * 8000, "%00", "..%2f..%2f"]:
                    url = f"{path}/{suffix}" if "models/" in path or "executions" in path else path
                    response = await client.get(url, params={"mode": suffix}, headers=auth)
                    if response.status_code != 200:  # ignored parameters are fine
                        _assert_envelope(f"GET {url}", response, failures)
    print(f"malformed corpus: {len(cases)} cases, {len(failures)} failed")
    assert not failures, "\n".join(failures[:40])
