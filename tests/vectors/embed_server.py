"""An OpenAI ``/v1/embeddings`` upstream on loopback whose vectors carry meaning.

aiohttp, in its own thread and event loop. Each text becomes a hashed bag of words:
lower-cased words (stop words dropped, a trailing plural ``s`` removed) counted into
:data:`DIM` buckets by a stable hash, then L2-normalised, so texts sharing words are close
in cosine distance and a question finds the passage that uses its words.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

DIM = 256
STOP = frozenset(
    "a an and are as at be by do does for from how in is it of on or the to what which who why "
    "with".split()
)


def bag_of_words(text: str, dim: int = DIM) -> list[float]:
    vector = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOP:
            continue
        word = word[:-1] if len(word) > 3 and word.endswith("s") else word
        bucket = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "big") % dim
        vector[bucket] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class EmbeddingsUpstream:
    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.calls = 0
        self.inputs = 0

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.calls += 1
        self.inputs += len(texts)
        data = [
            {"object": "embedding", "index": i, "embedding": bag_of_words(t, self.dim)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "bow"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


@contextmanager
def serve_embeddings(upstream: EmbeddingsUpstream) -> Iterator[str]:
    """Serve ``upstream`` on 127.0.0.1 (ephemeral port); yields the base URL."""
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/embeddings", upstream.embeddings)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
