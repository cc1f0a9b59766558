"""Chunking: sizes, overlap, Markdown sections, token estimate."""

from __future__ import annotations

import pytest

from aiservice.errors import InvalidRequestError
from aiservice.vectors.chunking import (
    ChunkSpec,
    chunk_text,
    estimate_tokens,
    is_markdown,
    pieces,
    sections,
    strategy_spec,
)

WORDS = " ".join(f"word{i}" for i in range(400))  # ~3.3k characters, one paragraph


def test_token_estimate_is_four_characters() -> None:
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert ChunkSpec(100, 20).size_chars == 400
    assert ChunkSpec(100, 20, "chars").size_chars == 100


@pytest.mark.parametrize("spec", [ChunkSpec(50, 10), ChunkSpec(300, 100, "chars")])
def test_every_chunk_fits_and_covers_the_text(spec: ChunkSpec) -> None:
    chunks = chunk_text(WORDS, spec)
    assert len(chunks) > 1
    assert all(len(c) <= spec.size_chars for c in chunks)
    words = set(WORDS.split())
    assert set(" ".join(chunks).split()) == words  # nothing lost, nothing invented


def test_consecutive_chunks_overlap() -> None:
    chunks = chunk_text(WORDS, ChunkSpec(200, 80, "chars"))
    for first, second in zip(chunks, chunks[1:], strict=False):
        shared = second.split()[0]
        assert shared in first.split(), (first, second)
        assert len(set(first.split()) & set(second.split())) >= 5


def test_no_overlap_means_disjoint_chunks() -> None:
    chunks = chunk_text(WORDS, ChunkSpec(200, 0, "chars"))
    assert sum(len(c.split()) for c in chunks) == 400


def test_paragraphs_are_packed_whole() -> None:
    text = "alpha beta.\n\ngamma delta.\n\n\nepsilon zeta."
    assert chunk_text(text, ChunkSpec(1000, 0, "chars")) == [
        "alpha beta.\n\ngamma delta.\n\nepsilon zeta."
    ]
    assert chunk_text(text, ChunkSpec(15, 0, "chars")) == [
        "alpha beta.",
        "gamma delta.",
        "epsilon zeta.",
    ]


def test_long_paragraphs_split_at_sentences_first() -> None:
    text = "One short sentence. Another short sentence. A third one here."
    assert pieces(text, 30) == [
        "One short sentence.",
        "Another short sentence.",
        "A third one here.",
    ]
    assert pieces("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_markdown_splits_on_headings_outside_code() -> None:
    text = "intro\n# One\nfirst\n```\n# not a heading\n```\n## Two\nsecond"
    assert sections(text, markdown=True) == [
        "intro",
        "# One\nfirst\n```\n# not a heading\n```",
        "## Two\nsecond",
    ]
    assert sections(text, markdown=False) == [text]


def test_markdown_chunks_never_span_sections() -> None:
    text = "# Cats\nCats purr.\n\n# Dogs\nDogs bark."
    assert chunk_text(text, ChunkSpec(1000, 0), markdown=True) == [
        "# Cats\nCats purr.",
        "# Dogs\nDogs bark.",
    ]
    assert len(chunk_text(text, ChunkSpec(1000, 0), markdown=False)) == 1


def test_empty_text_has_no_chunk() -> None:
    assert chunk_text("  \n\n ", ChunkSpec(10, 0)) == []


def test_spec_is_validated() -> None:
    with pytest.raises(ValueError):
        ChunkSpec(10, 6)
    assert is_markdown("README.MD") and not is_markdown("notes.txt")


def test_openai_chunking_strategies() -> None:
    default = ChunkSpec(300, 100, "chars")
    assert strategy_spec(None, default) is default
    assert strategy_spec({"type": "auto"}, default) is default
    static = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
    }
    assert strategy_spec(static, default) == ChunkSpec(200, 50, "tokens")
    for bad in (
        {"type": "static", "static": {"max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
        {"type": "static"},
        {"type": "other"},
        "auto",
    ):
        with pytest.raises(InvalidRequestError) as info:
            strategy_spec(bad, default)
        assert info.value.param == "chunking_strategy"
