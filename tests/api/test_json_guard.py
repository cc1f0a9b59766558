"""Strict JSON parsing of request bodies: the byte scanners and the parse itself."""

from __future__ import annotations

import json
import time

import pytest

from aiservice.errors import InvalidRequestError
from aiservice.security.json_guard import exceeds_depth, has_lone_surrogate, parse_json_body


@pytest.mark.parametrize(
    ("raw", "limit", "deep"),
    [
        (b"[" * 64 + b"]" * 64, 64, False),
        (b"[" * 65 + b"]" * 65, 64, True),
        (b'{"a":' * 65 + b"1" + b"}" * 65, 64, True),
        (b'["' + b"[" * 500 + b'"]', 2, False),  # brackets inside a string are text
        (rb'["\"' + b"[" * 500 + b'"]', 2, False),  # ...after an escaped quote too
        (rb'["\\", ' + b"[" * 5 + b"]" * 5 + b"]", 2, True),  # escaped backslash ends it
        (b"[" * 200_000, 64, True),  # unclosed
        (b"[]" * 10_000, 2, False),  # many siblings are not depth
    ],
)
def test_depth_scan(raw: bytes, limit: int, deep: bool) -> None:
    assert exceeds_depth(raw, limit) is deep


@pytest.mark.parametrize(
    ("raw", "lone"),
    [
        (rb'"\ud800"', True),
        (rb'"\uDFFF"', True),
        (rb'"\ude00\ud83d"', True),  # low before high
        (rb'"\ud800\ud83d\ude00"', True),  # a high, then a valid pair
        (rb'"\\\ud800"', True),  # escaped backslash, then a real escape
        (rb'"\ud83d\ude00"', False),  # a valid pair
        (rb'"\\ud800"', False),  # the text \ud800, no escape
        (b'"plain"', False),
    ],
)
def test_lone_surrogate_scan(raw: bytes, lone: bool) -> None:
    assert has_lone_surrogate(raw) is lone


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"a": NaN}', "invalid_number"),
        (b'{"a": Infinity}', "invalid_number"),
        (b'{"a": 1e999999}', "invalid_number"),
        (b'{"a": ' + b"9" * 1_000_000 + b"}", "invalid_number"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"a": {"b": 1, "b": 1}}', "duplicate_key"),
        (b"[1]", "invalid_json"),
        (b"{", "invalid_json"),
        (b"\xef\xbb\xbf{}", "invalid_json"),  # a byte order mark, as json.loads refuses it
        (b"\xff{}", "invalid_encoding"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_encoding"),  # a surrogate encoded as UTF-8
        (rb'{"a": "\ud800"}', "invalid_unicode"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", "json_too_deep"),
    ],
)
def test_refused_bodies_are_400_with_a_code(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_json_body(raw, max_depth=64)
    assert info.value.status_code == 400 and info.value.code == code


def test_valid_body_parses_unchanged() -> None:
    body = {"model": "m", "messages": [{"content": '\U0001f600 [x] {y} \\ "'}], "t": 0.5, "n": 2}
    assert parse_json_body(json.dumps(body).encode(), max_depth=64) == body


def test_the_shared_decoder_keeps_nothing_between_bodies() -> None:
    # One decoder serves every request: a refused body leaves no state for the next one.
    with pytest.raises(InvalidRequestError):
        parse_json_body(b'{"k": 1, "k": 2}', max_depth=64)
    assert parse_json_body(b'{"k": 1, "j": {"k": 2}}', max_depth=64) == {"k": 1, "j": {"k": 2}}


def test_guard_cost_on_a_100_kb_body_is_close_to_a_plain_parse() -> None:
    messages = [{"role": "user", "content": 'hello [world] {x} "q" ' * 20} for _ in range(200)]
    raw = json.dumps({"model": "m", "messages": messages}).encode()
    assert len(raw) > 100_000

    def best(fn: object, runs: int = 30) -> float:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return min(times)

    guarded = best(lambda: parse_json_body(raw, max_depth=64))
    plain = best(lambda: json.loads(raw))
    # Bounded work: a small multiple of the parse it replaces, a few ms at most.
    assert guarded < max(8 * plain, 0.002), (guarded, plain)
