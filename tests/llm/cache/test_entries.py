"""Cache entries keep the form their call produced; every stored format still loads."""

from __future__ import annotations

import json

from aiservice.llm.cache.entries import Entry, decode_entry, encode_entry

from .test_chunks import TOOL_STREAM

META = {"provider": "p", "model": "m"}
COMPLETION = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 7,
    "model": "m",
    # Fields the chunk round trip would drop or add: a completion entry keeps them as sent.
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "annotations": []},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "x_provider_extra": {"region": "eu"},
}


def test_format_1_entries_already_stored_still_load() -> None:
    # Exactly what the previous release wrote (no "f"): a chunk entry.
    raw = json.dumps({"v": 1, "chunks": TOOL_STREAM, "meta": META}, separators=(",", ":"))
    entry = decode_entry(raw.encode())
    assert entry == Entry(TOOL_STREAM, META)


def test_completion_entry_round_trips_unchanged() -> None:
    entry = decode_entry(encode_entry(Entry(None, META, COMPLETION)))
    assert entry is not None and entry.chunks is None
    assert entry.completion == COMPLETION and entry.meta == META  # as sent, not normalised


def test_chunk_entry_round_trips_and_stays_readable_by_format_1_readers() -> None:
    raw = encode_entry(Entry(TOOL_STREAM, META))
    assert decode_entry(raw) == Entry(TOOL_STREAM, META)
    data = json.loads(raw)
    # A format-1 reader only needs "v", "chunks" and "meta".
    assert (data["v"], data["chunks"], data["meta"]) == (1, TOOL_STREAM, META)


def test_unreadable_entries_are_none() -> None:
    def raw(**data: object) -> bytes:
        return json.dumps(data).encode()

    for value in (
        b"not json",
        b"[]",
        raw(v=2, chunks=TOOL_STREAM, meta=META),  # another key version
        raw(v=1, f=3, chunks=TOOL_STREAM, meta=META),  # a newer entry format
        raw(v=1, chunks=[], meta=META),
        raw(v=1, meta=META),
        raw(v=1, f=1, completion=COMPLETION, meta=META),  # format 1 had no completions
        raw(v=1, f=2, completion={}, meta=META),
        raw(v=1, f=2, completion=[1], meta=META),
        raw(v=1, f=2, meta=META),
        raw(v=1, f=2, completion=COMPLETION, meta=["x"]),
    ):
        assert decode_entry(value) is None, value
