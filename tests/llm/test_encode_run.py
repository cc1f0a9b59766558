"""A network read's chunks sent as one piece (``ChunkEncoder.verbatim_run``): the bytes the
same chunks give one by one (``ChunkEncoder.verbatim``), or ``None`` for the caller to take
them one by one whenever any of them needs a closer look."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiservice.llm.encode import MAX_DEPTH, ChunkEncoder, StreamChunk, StreamRun

UP = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up"}


def text_of(content: str = "tok", *, spaced: bool = False, **rest: Any) -> str:
    chunk = {**UP, **rest, "choices": [{"index": 0, "delta": {"content": content}}]}
    if spaced:
        return json.dumps(chunk)
    return json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))


def taken(text: str) -> dict[str, Any]:
    """The chunk the OpenAI provider forwards for ``text`` (its null usage popped)."""
    chunk: dict[str, Any] = json.loads(text)
    chunk.pop("usage", None)
    return chunk


def learned(public: str = "public", first: str | None = None) -> ChunkEncoder:
    """An encoder that has seen a stream's first chunk (the first always goes alone)."""
    encode = ChunkEncoder(public)
    first = first or text_of("")
    assert encode.verbatim(taken(first), first) is not None
    return encode


def one_by_one(texts: list[str], public: str = "public") -> list[StreamChunk]:
    encode = learned(public)
    out = [encode.verbatim(taken(t), t) for t in texts]
    assert all(o is not None for o in out)
    return out  # type: ignore[return-value]


def run_of(texts: list[str], public: str = "public") -> StreamRun | None:
    return learned(public).verbatim_run([(taken(t), t) for t in texts])


GOOD = [
    [text_of("a"), text_of("b"), text_of("c")],
    [text_of('é \u2028 \\ " [{ \\n'), text_of("x" * 500)],  # escapes other than \u
    [text_of("a")[:-1] + ',"usage":null}', text_of("b")[:-1] + ',"usage":null}'],
    [text_of("a", system_fingerprint="fp", obfuscation="pad1"), text_of("b", obfuscation="p")],
    [text_of("only")],
]


@pytest.mark.parametrize("texts", GOOD)
@pytest.mark.parametrize("public", ["public", "up"])  # renamed, and the upstream's own name
def test_a_run_is_the_bytes_of_its_chunks_sent_one_by_one(texts: list[str], public: str) -> None:
    run = run_of(texts, public)
    assert run is not None and run.public_model == public
    singles = one_by_one(texts, public)
    assert run.events == b"".join(b"data: " + s.wire + b"\n\n" for s in singles)  # type: ignore[operator]
    assert list(run) == [taken(t) for t in texts]
    # One by one again, for consumers of single chunks: the same chunks and wire forms.
    again = run.chunks()
    assert again == singles and [c.wire for c in again] == [s.wire for s in singles]
    assert all(type(c) is StreamChunk and c.public_model == public for c in again)


def test_a_spaced_upstream_run_keeps_its_spacing() -> None:
    encode = learned(first=text_of("", spaced=True))
    texts = [text_of("a", spaced=True), text_of("b", spaced=True)]
    run = encode.verbatim_run([(taken(t), t) for t in texts])
    assert run is not None
    events = [e[6:] for e in run.events.decode().split("\n\n") if e]
    assert events == [t.replace('"model": "up"', '"model": "public"') for t in texts]


DEEP = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)  # with the chunk's own: too deep


@pytest.mark.parametrize(
    "odd",
    [
        json.dumps({**UP, "choices": [{"delta": {"content": "é"}}]}),  # \u: maybe a surrogate
        text_of("a")[:-1] + ',"model":"up2"}',  # a second model member: the last one counts
        text_of("a")[:-1] + ',"usage":{"prompt_tokens":1}}',  # a usage left in the text
        text_of("a").replace('"choices"', '"usage":null,"choices"'),  # a null usage inside
        text_of("a").replace(',"choices"', ',\n"choices"'),  # multi-line data
        text_of("a", id="c2"),  # another prefix
        text_of("a")[:-1] + ',"deep":' + DEEP + "}",
    ],
)
def test_a_run_with_a_chunk_that_needs_a_closer_look_is_refused(odd: str) -> None:
    for texts in ([odd], [text_of("a"), odd], [odd, text_of("b"), text_of("c")]):
        assert run_of(texts) is None


def test_openers_just_within_the_bound_make_a_run() -> None:
    fine = "[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4)  # the chunk has four of its own
    texts = [text_of("a")[:-1] + ',"deep":' + fine + "}", text_of("b")]
    run = run_of(texts)
    assert run is not None
    assert run.events == b"".join(b"data: " + s.wire + b"\n\n" for s in one_by_one(texts))  # type: ignore[operator]


def test_no_run_before_a_prefix_is_learned() -> None:
    texts = [text_of("a"), text_of("b")]
    assert ChunkEncoder("public").verbatim_run([(taken(t), t) for t in texts]) is None
