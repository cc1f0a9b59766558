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
