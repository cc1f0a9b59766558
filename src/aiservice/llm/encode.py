"""Strict, compact JSON for what the gateway sends, and stream chunks serialised once.

:func:`dumps` is ``json.dumps(value, ensure_ascii=False, allow_nan=False,
separators=(",", ":")).encode()`` with the encoder built once: ``json.dumps`` with options
builds a new encoder on every call, which costs more than encoding a stream chunk.

A stream chunk is checked for what cannot be sent (a lone surrogate, a non-finite number,
nesting past :data:`MAX_DEPTH`) by encoding it, and the encoding is the event the client
receives: :func:`encode_chunk` returns the chunk as a :class:`StreamChunk`, a ``dict``
that also carries those bytes (with the public model name the client asked for), so the
SSE framing does not serialise it a second time. The gateway encodes a stream's chunks
with one :class:`ChunkEncoder`, which encodes what they share once.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..compact_json import dumps
from ..compact_json import dumps_text as _encode
from ..security.json_guard import exceeds_depth
from .limits import MAX_DEPTH, is_encodable

__all__ = ["MAX_DEPTH", "ChunkEncoder", "StreamChunk", "StreamRun", "dumps", "encode_chunk"]


class StreamChunk(dict[str, Any]):
    """A ``chat.completion.chunk`` and, in :attr:`wire`, its JSON with ``model`` set to
    :attr:`public_model` (``None`` when the chunk was checked but not encoded)."""

    __slots__ = ("public_model", "wire")

    wire: bytes | None
    public_model: str | None


class StreamRun(list[Any]):
    """The chunks of one network read (``chat.completion.chunk`` dicts) and, in
    :attr:`events`, the SSE events a client receives for them (``data: ...`` and a blank
    line each), with ``model`` set to :attr:`public_model`: see
    :meth:`ChunkEncoder.verbatim_run`."""

    __slots__ = ("events", "public_model")

    events: bytes
    public_model: str

    def chunks(self) -> list[StreamChunk]:
        """The same one by one, each a :class:`StreamChunk` with its own wire form."""
        out = []
        wires = self.events[6:-2].split(b"\n\ndata: ")  # no event holds a line end
        for chunk, wire in zip(self, wires, strict=True):
            one = StreamChunk(chunk)
            one.wire, one.public_model = wire, self.public_model
            out.append(one)
        return out


_ABSENT: Any = object()


def encode_chunk(chunk: Mapping[str, Any], model: str) -> StreamChunk | None:
    """``chunk`` with its wire form for the public name ``model``, or ``None`` when the
    chunk cannot be sent as JSON text (the upstream's fault: a protocol error)."""
    out = StreamChunk(chunk)
    # The public name goes into the copy for the encoding and out again: the chunk keeps
    # the upstream's (one copy per chunk, not two). Key order is what ``{**chunk,
    # "model": model}`` gives: in place when present, last when not.
    upstream = out.get("model", _ABSENT)
    out["model"] = model
    try:
        wire: bytes | None = _encode(out).encode()
    except (ValueError, TypeError, RecursionError):
        wire = None
    if upstream is _ABSENT:
        del out["model"]
    else:
        out["model"] = upstream
    # Nesting is checked only when the openers could nest that deep (never in a token).
    if wire is None or (
        wire.count(b"{") + wire.count(b"[") > MAX_DEPTH and exceeds_depth(wire, MAX_DEPTH)
    ):
        # Rare: decide on the chunk itself (the public name is not the upstream's doing).
        if not is_encodable(chunk):
            return None
        wire = None
    out.wire, out.public_model = wire, model
    return out


_SLOT = "\x00choices\x00"  # stands for ``choices`` while the rest of a chunk is encoded
_SLOT_JSON = b'"\\u0000choices\\u0000"'


class ChunkEncoder:
    """:func:`encode_chunk` for the chunks of one stream, which share everything but
    ``choices`` (``id``, ``object``, ``created``, ``model``...): the rest is encoded once,
    and a chunk whose rest is the same (same keys in the same order, equal values of the
    same types) costs the encoding of its ``choices`` only. The bytes are the same:
    JSON encoding is compositional. Anything else takes :func:`encode_chunk`."""

    __slots__ = (
        "_keys",
        "_learns",
        "_text",
        "_text_bytes",
        "_text_learns",
        "_text_models",
        "_text_openers",
        "_text_public",
        "_openers",
        "_prefix",
        "_slot",
        "_suffix",
        "_types",
        "_values",
        "model",
    )

    LEARNS = 3
    """Shared parts learned per stream at most: an upstream whose chunks differ in more
    than ``choices`` (a random padding field in each) gets :func:`encode_chunk` alone."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._learns = 0
        self._keys: list[str] | None = None
        self._values: list[Any] = []
        self._types: list[type] = []
        self._slot = 0
        self._prefix = self._suffix = b""
        self._openers = 0
        self._text: str | None = None  # the upstream's text up to its model's value
        self._text_public = b""  # the same with the public name, encoded
        self._text_bytes = b""  # the upstream's, encoded
        self._text_models = 0  # '"model"' in it: the top-level member, maybe nested ones
        self._text_learns = 0
        self._text_openers = 0

    def __call__(self, chunk: Mapping[str, Any]) -> StreamChunk | None:
        if self._keys is not None and list(chunk) == self._keys:
            values = list(chunk.values())
            choices = values[self._slot]
            values[self._slot] = _SLOT
            if type(choices) is list and values == self._values:
                if list(map(type, values)) == self._types:
                    fast = self._with(chunk, choices)
                    if fast is not None:
                        return fast
        out = encode_chunk(chunk, self.model)
        if out is not None and out.wire is not None and self._learns < self.LEARNS:
            self._learns += 1
            self._learn(chunk)
        return out

    def verbatim(self, chunk: Mapping[str, Any], text: str) -> StreamChunk | None:
        """:meth:`__call__` for a chunk parsed from ``text`` (the upstream's JSON on one
        line, every number in it finite: :func:`aiservice.providers.http.loads_finite`)
        and since changed at most by removing a null ``usage``. The wire form is ``text``
        itself, the public name in place of the upstream's ``model`` value and a trailing
        ``,"usage":null`` cut, when that is sure to be sendable JSON of the value
        :meth:`__call__` would encode: no other ``model`` or ``usage`` member, no ``\\u``
        escape (a lone surrogate, or a key spelled with escapes), no line break, no nesting
        that might be too deep. Whitespace and key order are the upstream's, the value is
        the same (``tests/llm/test_encode.py``). Anything else is encoded."""
        prefix = self._text
        if prefix is None or not text.startswith(prefix):
            if self._text_learns >= self.LEARNS:
                return self(chunk)
            self._text_learns += 1
            self._learn_text(chunk, text)
            prefix = self._text
            if prefix is None or not text.startswith(prefix):
                return self(chunk)
        rest = text[len(prefix) :]
        if (
            '"model"' in rest  # a second model member: the last one counts
            or "\\u" in rest  # maybe a lone surrogate (UTF-8 has none), a key spelled so
            or "\n" in rest  # the SSE framing's line end (multi-line data)
            or (
                len(rest) + self._text_openers > MAX_DEPTH
                and rest.count("{") + rest.count("[") + self._text_openers > MAX_DEPTH
            )
        ):
            return self(chunk)
        if rest.endswith(_NULL_USAGE):  # OpenAI's ``"usage":null`` (popped from the chunk)
            rest = rest[: -len(_NULL_USAGE)] + "}"
        if '"usage"' in rest:  # the chunk has none any more (or holds it elsewhere)
            return self(chunk)
        out = StreamChunk(chunk)
        out.wire, out.public_model = self._text_public + rest.encode(), self.model
        return out

    def verbatim_run(
        self, items: Sequence[tuple[Mapping[str, Any], str | None]]
    ) -> StreamRun | None:
        """:meth:`verbatim` for the chunks of one network read at once, each with the text
        it was parsed from: their events in one piece, from a few passes over the joined
        text instead of a dozen steps per chunk. ``None`` unless every chunk has its text
        and would be sent verbatim, the learned prefix matching each: the caller then
        takes them one by one (which learns, encodes, or names the problem)."""
        prefix, n = self._text_bytes, len(items)
        texts = [text for _, text in items if text is not None]
        if not prefix or len(texts) != n:
            return None
        try:
            raw = "\n".join(texts).encode()
        except UnicodeEncodeError:  # a lone surrogate: never from a decoded line
            return None
        if (
            not raw.startswith(prefix)
            or raw.count(b"\n" + prefix) != n - 1  # each text starts with the prefix
            or raw.count(b'"model"') != n * self._text_models  # a second model member
            # maybe a lone surrogate, or a key spelled with escapes (memchr first: fast)
            or (raw.find(b"\\") != -1 and raw.find(b"\\u") != -1)
        ):
            return None
        # ``find``, not ``in``, on bytes: see aiservice.transport.lines.
        if raw.find(b'"usage"') != -1:  # OpenAI's ``"usage":null``, popped from each chunk
            raw = (raw + b"\n").replace(_NULL_USAGE_LINE, b"}\n")[:-1]
            if raw.find(b'"usage"') != -1:  # none any more in the chunk (or elsewhere)
                return None
        # Each text's openers: one line per text unless one holds a line end (multi-line
        # data), and none past the nesting bound.
        openers = raw.translate(None, _NOT_OPENERS).split(b"\n")
        if len(openers) != n or max(map(len, openers)) > MAX_DEPTH:
            return None
        public = self._text_public
        if public != prefix:
            raw = public + raw[len(prefix) :].replace(b"\n" + prefix, b"\n" + public)
        out = StreamRun(chunk for chunk, _ in items)
        out.events = b"data: " + raw.replace(b"\n", b"\n\ndata: ") + b"\n\n"
        out.public_model = self.model
        return out

    def _learn_text(self, chunk: Mapping[str, Any], text: str) -> None:
        self._text = None
        found = _model_member(text)
        if found is None:
            return
        start, stop, value = found
        prefix = text[:stop]
        if value != chunk.get("model") or "\\u" in prefix or "\n" in prefix or '"usage"' in prefix:
            return
        try:
            public = (text[:start] + _encode(self.model)).encode()
        except (ValueError, TypeError):
            return
        self._text, self._text_public = prefix, public
        self._text_openers = prefix.count("{") + prefix.count("[")
        self._text_bytes, self._text_models = prefix.encode(), prefix.count('"model"')

    def _with(self, chunk: Mapping[str, Any], choices: list[Any]) -> StreamChunk | None:
        try:
            inner = _encode(choices).encode()
        except (ValueError, TypeError, RecursionError):
            return None  # encode_chunk decides (and names the problem)
        if inner.count(b"{") + inner.count(b"[") + self._openers > MAX_DEPTH:
            return None  # maybe too deep: encode_chunk looks closer
        out = StreamChunk(chunk)
        out.wire, out.public_model = self._prefix + inner + self._suffix, self.model
        return out

    def _learn(self, chunk: Mapping[str, Any]) -> None:
        """Remember ``chunk``'s rest, when it has ``choices`` (a list) and the rest has
        only strings, integers and nulls (values equal but encoded apart, like ``1`` and
        ``1.0``, are told apart by their type)."""
        self._keys = None
        keys = list(chunk)
        if "choices" not in chunk or type(chunk["choices"]) is not list:
            return
        slot = keys.index("choices")
        values = list(chunk.values())
        values[slot] = _SLOT
        types = list(map(type, values))
        if not all(t in (str, int, type(None)) for t in types):
            return
        rest = dict(zip(keys, values, strict=True))
        rest["model"] = self.model
        try:
            wire = dumps(rest)
        except (ValueError, TypeError):
            return
        if wire.count(_SLOT_JSON) != 1:
            return  # the stand-in is ambiguous: no shortcut for this stream
        self._prefix, _, self._suffix = wire.partition(_SLOT_JSON)
        self._openers = 1  # the chunk's own brace
        self._keys, self._values, self._types, self._slot = keys, values, types, slot


_NULL_USAGE = ',"usage":null}'
_NULL_USAGE_LINE = b',"usage":null}\n'
_NOT_OPENERS = bytes(b for b in range(256) if b not in b"{[\n")  # deleted: openers count
_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int) -> int:
    """The index after the JSON whitespace at ``i``."""
    found = _WS.match(text, i)
    return i if found is None else found.end()


_scan_value: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the class, not the call
)


def _model_member(text: str) -> tuple[int, int, str] | None:
    """Where the value of the first top-level ``model`` member of the JSON object ``text``
    starts and ends, and the value (``None``: no such member before a syntax the walk does
    not expect, or the value is not a string)."""
    if not text.startswith("{"):
        return None
    i = _skip(text, 1)
    try:
        while text[i : i + 1] == '"':
            key, i = _scan_value(text, i)
            i = _skip(text, i)
            if text[i : i + 1] != ":":
                return None
            start = _skip(text, i + 1)
            value, i = _scan_value(text, start)
            if key == "model":
                return (start, i, value) if type(value) is str else None
            i = _skip(text, i)
            if text[i : i + 1] != ",":
                return None
            i = _skip(text, i + 1)
    except (ValueError, StopIteration):
        return None
    return None
