"""Cutting documents into overlapping chunks before embedding: pure functions.

The algorithm (docs/vectors.md#chunking):

1. Split into *sections*: for Markdown, a new section starts at every ATX heading line
   (``#`` to ``######``, outside fenced code blocks); plain text is one section.
2. Split each section into *paragraphs* on blank lines; a paragraph longer than
   ``size - overlap`` is cut at sentence ends, then at whitespace, and only then mid-word.
3. Pack paragraphs greedily into chunks of at most ``size``. A chunk never spans two
   sections, so a heading always opens a chunk and stays with its text. Each following
   chunk of a section starts with the last ``overlap`` of the previous one (snapped to a
   word boundary), so a passage cut in two is still found whole in one of them.

Sizes are in characters or in *estimated tokens*: 4 characters per token
(:data:`CHARS_PER_TOKEN`), OpenAI's rule of thumb for English text, so no tokenizer is
loaded. Non-English text or code runs more tokens per character; keep a margin under the
embedding model's input limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidRequestError

__all__ = [
    "CHARS_PER_TOKEN",
    "ChunkSpec",
    "chunk_text",
    "estimate_tokens",
    "is_markdown",
    "strategy_spec",
]

CHARS_PER_TOKEN = 4

_HEADING = re.compile(r"^#{1,6}\s")
_FENCE = re.compile(r"^(```|~~~)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    size: int
    overlap: int
    unit: Literal["tokens", "chars"] = "tokens"

    def __post_init__(self) -> None:
        if self.size < 1 or self.overlap < 0 or self.overlap * 2 > self.size:
            raise ValueError("chunk size must be >= 1 and overlap at most half of it")

    @property
    def size_chars(self) -> int:
        return self.size * (CHARS_PER_TOKEN if self.unit == "tokens" else 1)

    @property
    def overlap_chars(self) -> int:
        return self.overlap * (CHARS_PER_TOKEN if self.unit == "tokens" else 1)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the 4-characters rule (at least 1 for non-empty text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def is_markdown(filename: str) -> bool:
    return filename.lower().endswith((".md", ".markdown", ".mdx"))


def sections(text: str, markdown: bool) -> list[str]:
    """Markdown: one section per heading (text before the first is a section too)."""
    if not markdown:
        return [text]
    found: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _HEADING.match(line) and any(s.strip() for s in found[-1]):
            found.append([])
        found[-1].append(line)
    return ["\n".join(lines) for lines in found]


def _hard_split(text: str, limit: int) -> list[str]:
    """At whitespace where possible, else mid-word."""
    out: list[str] = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        out.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        out.append(text)
    return out


def pieces(section: str, limit: int) -> list[str]:
    """The section's paragraphs, each at most ``limit`` characters."""
    out: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(section):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            out.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            out.extend(_hard_split(sentence, limit))
    return out


def _tail(text: str, n: int) -> str:
    """The last ``n`` characters of ``text``, starting at a word."""
    if n <= 0 or not text:
        return ""
    if len(text) <= n:
        return text
    if text[-n - 1].isspace():
        return text[-n:]
    tail = text[-n:]
    space = tail.find(" ")
    return tail[space + 1 :] if space >= 0 else ""  # no word starts inside: carry nothing


def pack(parts: list[str], size: int, overlap: int) -> list[str]:
    """Greedy packing of ``parts`` (each <= size) with ``overlap`` carried between chunks."""
    chunks: list[str] = []
    current = ""
    for part in parts:
        if not current:
            current = part
            continue
        if len(current) + 2 + len(part) <= size:
            current = f"{current}\n\n{part}"
            continue
        chunks.append(current)
        carried = _tail(current, min(overlap, size - len(part) - 1))
        current = f"{carried} {part}" if carried else part
    if current:
        chunks.append(current)
    return chunks


def chunk_text(text: str, spec: ChunkSpec, *, markdown: bool = False) -> list[str]:
    """``text`` as chunks of at most ``spec.size`` (see the module docstring)."""
    size, overlap = spec.size_chars, spec.overlap_chars
    chunks: list[str] = []
    for section in sections(text.replace("\r\n", "\n"), markdown):
        # Pieces leave room for the overlap, so every chunk after the first carries it.
        chunks.extend(pack(pieces(section, size - overlap), size, overlap))
    return chunks


def strategy_spec(strategy: Any, default: ChunkSpec) -> ChunkSpec:
    """OpenAI's ``chunking_strategy`` (``auto``: ``default``; ``static``: its sizes in tokens)."""
    if strategy is None or (isinstance(strategy, dict) and strategy.get("type") == "auto"):
        return default
    static = strategy.get("static") if isinstance(strategy, dict) else None
    if isinstance(strategy, dict) and strategy.get("type") == "static" and isinstance(static, dict):
        size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
        if (
            isinstance(size, int)
            and isinstance(overlap, int)
            and 100 <= size <= 4096
            and 0 <= overlap * 2 <= size
        ):
            return ChunkSpec(size, overlap, "tokens")
        raise InvalidRequestError(
            "static chunking needs max_chunk_size_tokens in 100..4096 and "
            "chunk_overlap_tokens at most half of it",
            param="chunking_strategy",
        )
    raise InvalidRequestError(
        "chunking_strategy type must be 'auto' or 'static'", param="chunking_strategy"
    )
