"""Bulk import into a vector store: a folder of text/Markdown files or a JSONL of records.

A JSONL line is ``{"id": ..., "text": "..."}`` (embedded here), ``{"id": ..., "vector":
[...]}`` (a migration: precomputed vectors, written as they are) or both (the text is kept
as the passage search returns); ``metadata`` (an object) becomes the point's attributes,
and its ``filename`` is reported by search. A folder's ``*.txt`` / ``*.md`` files are
chunked like attached files (``vectors.chunking``); each file is one item.

Resuming: items are numbered in source order and processed in batches, several at a time.
After each batch the checkpoint file records ``done``, the count of leading items whose
batches all finished, written atomically (temporary file, then rename). A rerun skips
those items. Batches after ``done`` that had finished are written again, which creates no
duplicates: a point's id is ``uuid5`` of the store and the record id (the file path and
chunk number for folders), so a rewrite replaces it. A SIGKILL at any moment therefore
loses no record and duplicates none.

A failing batch is retried (``retries`` times, exponential backoff); a record that can
never be written (bad JSON, a vector of the wrong dimension) stops the run naming its line.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError
from .base import Point
from .chunking import ChunkSpec, chunk_text, is_markdown
from .meta import point_id
from .service import Embed, VectorStores

__all__ = ["IngestError", "IngestOptions", "Item", "Progress", "ingest", "read_items"]

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".mdx")


class IngestError(Exception):
    """A record that cannot be imported (names the source line or file)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One point to write: a JSONL record or one chunk of a file."""

    key: str
    text: str | None
    vector: list[float] | None
    payload: dict[str, Any]


@dataclass(slots=True)
class IngestOptions:
    batch_size: int = 256
    concurrency: int = 4
    retries: int = 3
    backoff: float = 0.5
    checkpoint: Path | None = None
    restart: bool = False


@dataclass(slots=True)
class Progress:
    total: int
    done: int = 0
    skipped: int = 0
    points: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0


def _jsonl(path: Path) -> Iterator[list[Item]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                yield []
                continue
            try:
                record = json.loads(line)
                key = record["id"]
                text, vector = record.get("text"), record.get("vector")
                metadata = record.get("metadata") or {}
                if not isinstance(metadata, dict) or (text is None and vector is None):
                    raise ValueError("needs 'text' or 'vector', and 'metadata' as an object")
                if vector is not None and not all(isinstance(v, int | float) for v in vector):
                    raise ValueError("'vector' must be a list of numbers")
            except (ValueError, KeyError, TypeError) as exc:
                raise IngestError(f"{path}:{number}: invalid record: {exc}") from exc
            payload = {
                "file_id": str(key),
                "filename": str(metadata.get("filename", key)),
                "text": text or "",
                "attributes": metadata,
            }
            yield [Item(str(key), text, vector, payload)]


def _folder(root: Path, spec: ChunkSpec) -> Iterator[list[Item]]:
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES):
        relative = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path}: not UTF-8 text") from exc
        chunks = chunk_text(text, spec, markdown=is_markdown(path.name))
        base = {"file_id": relative, "filename": relative, "attributes": {}}
        yield [
            Item(f"{relative}#{i}", chunk, None, {**base, "text": chunk, "chunk": i})
            for i, chunk in enumerate(chunks)
        ]


def read_items(source: Path, spec: ChunkSpec) -> tuple[int, Iterator[list[Item]]]:
    """``(count, items)``: one list per source unit (a JSONL line, a file)."""
    if source.is_dir():
        count = sum(1 for p in source.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
        return count, _folder(source, spec)
    with source.open("rb") as f:
        count = sum(1 for _ in f)
    return count, _jsonl(source)


def _load_checkpoint(path: Path | None, identity: dict[str, str]) -> int:
    if path is None or not path.exists():
        return 0
    state = json.loads(path.read_text(encoding="utf-8"))
    if {k: state.get(k) for k in identity} != identity:
        raise IngestError(f"{path} is the checkpoint of another import: use --restart")
    done: int = state["done"]
    return done


def _save_checkpoint(path: Path | None, identity: dict[str, str], done: int) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**identity, "done": done}), encoding="utf-8")
    os.replace(tmp, path)


async def _points(
    service: VectorStores, store_id: str, items: list[Item], embed: Embed | None
) -> list[Point]:
    missing = [i for i in items if i.vector is None]
    vectors: dict[str, list[float]] = {}
    if missing:
        if embed is None:
            raise IngestError("records without 'vector' need vectors.embedding_model")
        found = await embed([i.text or "" for i in missing])
        vectors = {i.key: v for i, v in zip(missing, found, strict=True)}
    points = [
        Point(point_id(store_id, i.key), i.vector or vectors[i.key], i.payload) for i in items
    ]
    if points:
        dim = await service.backend.dimension(service.collection(store_id))
        dim = dim or len(points[0].vector or ())
        for item, point in zip(items, points, strict=True):
            if len(point.vector or ()) != dim:
                raise IngestError(
                    f"record {item.key!r}: vector has {len(point.vector or ())} dimensions, "
                    f"the store has {dim}"
                )
    return points


async def ingest(
    service: VectorStores,
    store_id: str,
    source: Path,
    embed: Embed | None,
    options: IngestOptions,
    report: Callable[[Progress], Awaitable[None] | None] = lambda _: None,
) -> Progress:
    """Import ``source`` into ``store_id`` (which must exist); see the module docstring."""
    spec = ChunkSpec(
        service.settings.chunking.size,
        service.settings.chunking.overlap,
        service.settings.chunking.unit,
    )
    total, units = read_items(source, spec)
    identity = {"source": str(source.resolve()), "store": store_id}
    start = 0 if options.restart else _load_checkpoint(options.checkpoint, identity)
    progress = Progress(total, done=start, skipped=start)
    gate = asyncio.Semaphore(options.concurrency)
    finished: dict[int, int] = {}  # batch start -> batch end, finished but not yet contiguous
    watermark = start
    tasks: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def run(first: int, last: int, items: list[Item]) -> None:
        nonlocal watermark
        try:
            for attempt in range(options.retries + 1):
                try:
                    points = await _points(service, store_id, items, embed)
                    await service.indexer.write(store_id, points, "ingest")
                    break
                except (IngestError, InvalidRequestError) as exc:  # retrying cannot help
                    raise IngestError(str(exc)) from exc
                except Exception:
                    if attempt == options.retries:
                        raise
                    await asyncio.sleep(options.backoff * 2**attempt)
            progress.points += len(items)
            finished[first] = last
            while watermark in finished:
                watermark = finished.pop(watermark)
            progress.done = watermark + sum(b - a for a, b in finished.items())
            _save_checkpoint(options.checkpoint, identity, watermark)
            outcome = report(progress)
            if outcome is not None:
                await outcome
        except BaseException as exc:
            failure.append(exc)
        finally:
            gate.release()

    index, batch_first, batch = 0, start, []
    try:
        for unit in units:
            index += 1
            if index <= start:
                continue
            batch.extend(unit)
            if index - batch_first >= options.batch_size:
                await gate.acquire()
                if failure:
                    gate.release()
                    break
                tasks.add(asyncio.create_task(run(batch_first, index, batch)))
                batch_first, batch = index, []
        else:
            if index > batch_first:
                await gate.acquire()
                tasks.add(asyncio.create_task(run(batch_first, index, batch)))
    finally:  # a bad line stops reading; what was started still finishes and checkpoints
        await asyncio.gather(*tasks)
    if failure:
        raise failure[0]
    _save_checkpoint(options.checkpoint, identity, watermark)
    return progress
