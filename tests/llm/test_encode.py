"""A stream chunk is encoded once, with the public model name, and keeps its own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiservice.llm.encode import MAX_DEPTH, dumps, encode_chunk


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
