"""A stream chunk is encoded once, with the public model name, and keeps its own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiservice.llm.encode import MAX_DEPTH, ChunkEncoder, dumps, encode_chunk


@pytest.mark.parametrize(
    "chunk",
    [
        {"id": "c1", "model": "upstream-name", "choices": [{"delta": {"content": "é"}}]},
        {"id": "c1", "choices": []},  # no model: the public one goes last
    ],
)
def test_the_wire_has_the_public_name_and_the_chunk_its_own(chunk: dict[str, Any]) -> None:
    before = dict(chunk)
    out = encode_chunk(chunk, "public")
    assert out is not None and out.public_model == "public"
    assert out.wire == dumps({**chunk, "model": "public"})
    assert out == before and list(out) == list(before) and chunk == before


@pytest.mark.parametrize(
    "bad", [float("nan"), "lone \ud800", json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))]
)
def test_a_chunk_that_cannot_be_sent_is_refused(bad: Any) -> None:
    chunk = {"id": "c1", "model": "m", "choices": [{"delta": {"content": bad}}]}
    assert encode_chunk(chunk, "public") is None
    assert chunk["model"] == "m"


def test_deep_brackets_inside_strings_are_text() -> None:
    text = "[" * (MAX_DEPTH + 5)
    out = encode_chunk({"choices": [{"delta": {"content": text}}]}, "public")
    assert out is not None and out.wire is not None and text.encode() in out.wire


def _chunk(content: Any = "tok", **rest: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 1}
    base["model"] = "up"
    base.update(rest)
    base["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    return base


SEQUENCE = [
    _chunk(""),
    _chunk(),
    _chunk('é \u2028 \\ "'),
    _chunk(created=1.0),  # equal to 1, encoded apart
    _chunk(created=True),
    _chunk(),
    _chunk(float("nan")),  # cannot be sent
    _chunk("lone \ud800"),
    _chunk(json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)),  # too deep with the chunk's own
    _chunk(json.loads("[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4))),  # deep, still fine
    _chunk("[{" * 40),  # brackets inside a string are text
    _chunk(id="\x00choices\x00"),  # the encoder's stand-in, sent by the upstream
    _chunk(id="\x00choices\x00"),
    {"choices": [], "usage": {"prompt_tokens": 1}, "id": "c1"},  # choices not last
    {"choices": [], "usage": {"prompt_tokens": 2}, "id": "c1"},
    {"id": "c1", "choices": {"not": "a list"}},
    {"id": "c1", "created": 1, "choices": []},  # no model: the public one goes last
    {"id": "c1", "created": 1, "choices": [{"delta": {}}]},
    {"created": 1, "id": "c1", "choices": []},  # same keys, another order
    _chunk(system_fingerprint={"nested": 1}),
    _chunk(system_fingerprint={"nested": 2}),
    _chunk(),
]


def test_a_streams_encoder_gives_what_encode_chunk_gives() -> None:
    encode = ChunkEncoder("public")
    for chunk in SEQUENCE:
        expected = encode_chunk(chunk, "public")
        got = encode(chunk)
        if expected is None:
            assert got is None
            continue
        assert got is not None and got == expected and list(got) == list(expected)
        assert (got.wire, got.public_model) == (expected.wire, expected.public_model)


def test_a_streams_encoder_takes_the_short_way_for_a_token() -> None:
    encode = ChunkEncoder("public")
    encode(_chunk(""))
    assert encode._keys is not None  # learned the chunk's rest
    out = encode(_chunk("x"))
    assert out is not None and out.wire == dumps({**_chunk("x"), "model": "public"})


def test_chunks_that_differ_in_more_than_choices_stop_the_learning() -> None:
    encode = ChunkEncoder("public")
    for n in range(10):
        chunk = _chunk(obfuscation=f"pad{n}")  # a field that changes in every chunk
        out = encode(chunk)
        assert out is not None and out.wire == dumps({**chunk, "model": "public"})
    assert encode._learns == ChunkEncoder.LEARNS


# -- verbatim: the upstream's own text, with the public name ------------------------------


def _taken(text: str) -> dict[str, Any]:
    """The chunk the OpenAI provider forwards for ``text`` (its null usage popped)."""
    chunk: dict[str, Any] = json.loads(text)
    chunk.pop("usage", None)
    return chunk


def _compact(chunk: dict[str, Any]) -> str:
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))


UPSTREAM = _chunk("tok", system_fingerprint="fp_1")


@pytest.mark.parametrize(
    "text",
    [
        _compact(UPSTREAM),  # OpenAI's own form: compact, UTF-8
        _compact(_chunk('é \u2028 \\ " [{')),
        _compact(UPSTREAM)[:-1] + ',"usage":null}',  # include_usage: null in every chunk
        _compact({**UPSTREAM, "choices": [{"index": 0, "delta": {"content": "x" * 500}}]}),
    ],
)
def test_a_compact_upstream_chunk_is_sent_as_the_encoding_would_send_it(text: str) -> None:
    verbatim, general = ChunkEncoder("public"), ChunkEncoder("public")
    for content in ("first", "second"):  # learned on the first, reused on the second
        text = text.replace('"tok"', json.dumps(content))
        out, expected = verbatim.verbatim(_taken(text), text), general(_taken(text))
        assert out is not None and expected is not None
        assert out.wire == expected.wire and out == expected
    assert verbatim._text is not None and verbatim._learns == 0  # never encoded


def test_a_spaced_upstream_chunk_keeps_its_spacing_and_parses_the_same() -> None:
    encode = ChunkEncoder("public")
    for content in ("a", "b"):
        text = json.dumps({**UPSTREAM, "choices": [{"index": 0, "delta": {"content": content}}]})
        out = encode.verbatim(_taken(text), text)
        assert out is not None and out.wire is not None
        assert out.wire == text.replace('"model": "up"', '"model": "public"').encode()
        assert json.loads(out.wire) == {**_taken(text), "model": "public"}
        assert out == _taken(text) and out.public_model == "public"


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(_chunk("é")),  # escapes: maybe a lone surrogate, which is not sendable
        json.dumps(_chunk("lone \ud800")),
        '{"id":"c1","model":"up","choices":[{"delta":{"content":"a"}}],"model":"up2"}',
        '{"id":"c1","model":"up","mod\\u0065l":"up2","choices":[]}',
        '{"id":"c1","model":"up","usage":null,"choices":[{"delta":{"content":"a"}}]}',
        '{"usage":null,"id":"c1","model":"up","choices":[{"delta":{"content":"a"}}]}',
        '{"id":"c1","model":"up","choices":[{"delta":{"content":"a"}}], "usage": null}',
        '{"id":"c1","model":"up",\n"choices":[{"delta":{"content":"a"}}]}',  # multi-line data
        '{"id":"c1","choices":[{"delta":{"content":"a"}}]}',  # no model: the public one last
        '{"id":"c1","model":7,"choices":[]}',
        '{"id":"c1","model":"up","choices":'
        + json.dumps(json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH))
        + "}",  # too deep with the chunk's own
        '{"id":"c1","model":"up","choices":[' + "[" * 40 + "]" * 40 + "]}",  # deep, still fine
    ],
)
def test_text_that_might_differ_from_its_value_is_encoded(text: str) -> None:
    chunk = _taken(text)
    expected = encode_chunk(chunk, "public")
    for _ in range(2):
        out = ChunkEncoder("public").verbatim(dict(chunk), text)
        if expected is None:
            assert out is None
            continue
        assert out is not None and out.wire == expected.wire and out == expected


def test_a_prefix_that_stops_matching_is_learned_again_a_few_times() -> None:
    encode = ChunkEncoder("public")
    for n in range(10):
        text = _compact(_chunk("x", id=f"c{n}"))  # an id that changes in every chunk
        out = encode.verbatim(_taken(text), text)
        expected = encode_chunk(_taken(text), "public")
        assert out is not None and expected is not None and out.wire == expected.wire
    assert encode._text_learns == ChunkEncoder.LEARNS
