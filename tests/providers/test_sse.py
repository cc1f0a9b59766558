"""The streaming parsers' fast paths give what the plain rules give: lines decoded once per
network read, SSE events from batches of lines, and the C-scanner JSON decoding."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import pytest

from aiservice.providers.http import ServerSentEvent, SSEParser, iter_sse, loads
from aiservice.transport.errors import BodyTooLargeError
from aiservice.transport.lines import iter_lines


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def flat(parts: list[bytes], max_line: int | None = None) -> list[str]:
    return [line async for batch in iter_lines(chunks(*parts), max_line) for line in batch]


def per_line(data: bytes) -> list[str]:
    """The reference: split the bytes at LF, decode each line on its own."""
    return [line.decode("utf-8", "replace") for line in data.split(b"\n")]


async def test_decoding_a_read_at_once_equals_decoding_each_line() -> None:
    # Invalid and truncated UTF-8 at line ends, in the middle, and split across reads.
    pieces = [b"ok", "é".encode(), b"\xff", "€".encode()[:2], b"\xe2\x82", b"\x80", b"\n"]
    rng = random.Random(7)
    for _ in range(200):
        data = b"".join(rng.choice(pieces) for _ in range(30)) + b"\n"
        cuts = sorted(rng.sample(range(1, len(data)), 4))
        parts = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert await flat(parts) == per_line(data)[:-1]


async def test_a_long_line_is_refused_in_a_large_read_and_across_reads() -> None:
    with pytest.raises(BodyTooLargeError):
        await flat([b"x" * 20 + b"\nok\n"], max_line=10)
    with pytest.raises(BodyTooLargeError):
        await flat([b"ok\n" + b"x" * 6, b"x" * 6, b"x\n"], max_line=10)
    assert await flat([b"a" * 10 + b"\n" + b"b" * 10 + b"\n"], max_line=10) == ["a" * 10, "b" * 10]


async def batches(*groups: list[str]) -> AsyncIterator[list[str]]:
    for group in groups:
        yield group


LINES = [
    ": a comment",
    "event: delta",
    "id: 7",
    "data: one",
    "data:two",  # no space after the colon
    "",
    "data: {}",
    "retry: 10",  # unknown fields are ignored
    "",
    "",  # an empty event dispatches nothing
    "data:  two spaces",
]


async def test_sse_events_follow_the_whatwg_rules_whatever_the_batching() -> None:
    expected = [
        ServerSentEvent("delta", "one\ntwo", "7"),
        ServerSentEvent("message", "{}", "7"),
        ServerSentEvent("message", " two spaces", "7"),  # flushed at the end of the stream
    ]
    for cut in range(len(LINES) + 1):
        got = [e async for e in iter_sse(batches(LINES[:cut], LINES[cut:]))]
        assert got == expected


def test_the_data_only_view_gives_the_same_payloads() -> None:
    parser = SSEParser()
    assert parser.data(LINES[:5]) == []
    assert parser.data(LINES[5:]) == ["one\ntwo", "{}"]
    last = parser.close()
    assert last is not None and last.data == " two spaces"
    assert parser.close() is None


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, null, true]}', ' {"a": 1}', '{"a": 1}\r\n ', "[]", '"\\ud800"', "NaN", "7"],
)
def test_loads_is_json_loads(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', '{"a": 1}\u00a0', "{'a': 1}"])
def test_loads_fails_as_json_loads_does(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(text)
    assert str(caught.value) == str(reference.value)


def slow_data(parser: SSEParser, lines: list[str]) -> list[str]:
    """The data view one line at a time: the per-line loop, never the burst's shortcut."""
    return [d for line in lines for d in parser.data([line])]


def test_a_bursts_events_split_at_once_give_what_the_line_loop_gives() -> None:
    pieces = [
        ["data: {}", ""],
        ["data: x", ""],
        ["data:y", ""],  # no space: the loop's business
        ["data: a", "data: b", ""],  # multi-line data
        ["event: e", "data: c", ""],
        [": comment", ""],
        ["", ""],
        ["data: data: ", ""],
        ["data: ", ""],
        ["data: z"],  # unfinished: waits for its blank line
    ]
    rng = random.Random(11)
    for _ in range(300):
        lines = [line for _ in range(rng.randint(1, 8)) for line in rng.choice(pieces)]
        cut = rng.randint(0, len(lines))
        fast, reference = SSEParser(), SSEParser()
        got = fast.data(lines[:cut]) + fast.data(lines[cut:])
        assert got == slow_data(reference, lines), lines
        closed, expected = fast.close(), reference.close()
        assert (closed and closed.data) == (expected and expected.data)


@pytest.mark.parametrize(
    "data",
    [
        json.dumps([random.Random(5).gauss(0, 0.05) for _ in range(1536)]).encode(),
        b'{"a": [1, 2.5, -0.0, 1e-5, 922337203685477580], "b": "\\u00e9"}',
        b"[123456789012345678901234567890, -9223372036854775809]",  # beyond 64 bits
        b"[NaN, Infinity, 1e400]",
        b'"\\ud800"',  # a lone surrogate
        '{"a": 1}'.encode("utf-16"),
        b"\xef\xbb\xbf[1]",  # UTF-8 with a byte-order mark
    ],
)
def test_loads_bytes_is_json_loads(data: bytes) -> None:
    from aiservice.providers.http import loads_bytes

    assert repr(loads_bytes(data)) == repr(json.loads(data))


@pytest.mark.parametrize("data", [b"", b"[1,", b"{'a': 1}", b"\xff"])
def test_loads_bytes_fails_as_json_loads_does(data: bytes) -> None:
    from aiservice.providers.http import loads_bytes

    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        loads_bytes(data)
