"""The floor every gateway throughput number is divided by: a hand-written minimal proxy.

``PROXY`` is a FastAPI app under uvicorn (1 worker, access log off) forwarding
``POST /v1/chat/completions`` to the upstream with one shared ``aiohttp.ClientSession``:
no auth, no cache, no metrics, no translation; a streamed answer is relayed chunk by chunk
as it arrives. It is what "the least a Python gateway on this stack can cost" looks like,
measured in the same run as the gateway (see ``bench/gateway_overhead.py``).

Run alone (``python bench/proxy_baseline.py``): direct vs proxy with wrk, ~20 s.
"""

from __future__ import annotations

import sys

PROXY = r"""
import json, sys, aiohttp, uvicorn
from contextlib import asynccontextmanager
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

URL = f"http://127.0.0.1:{sys.argv[2]}/v1/chat/completions"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
state = {}

@asynccontextmanager
async def lifespan(app):
    connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=30, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:
        state["session"] = session
        yield

app = FastAPI(lifespan=lifespan)

@app.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    body = await request.body()
    if not json.loads(body).get("stream"):
        async with state["session"].post(URL, data=body, headers=HEADERS) as up:
            return Response(await up.read(), up.status, media_type="application/json")
    up = await state["session"].post(URL, data=body, headers=HEADERS)

    async def relay():
        async with up:
            async for chunk in up.content.iter_any():
                yield chunk

    return StreamingResponse(relay(), up.status, media_type="text/event-stream")

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, workers=1, backlog=4096)
"""
"""``-c PROXY <port> <upstream port>``."""


def main() -> int:
    from _common import servers, wrk
    from gateway_overhead import HEADERS, PATH, REQUEST_BODY, UPSTREAM

    scripts = {"direct": (UPSTREAM, ()), "proxy": (PROXY, ("{direct}",))}
    with servers(scripts) as ports:
        print(f"{'conc':>4} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for concurrency in (1, 32):
            for name, port in ports.items():
                wrk(port, PATH, REQUEST_BODY, HEADERS, concurrency, 1)  # warm-up
                r = wrk(port, PATH, REQUEST_BODY, HEADERS, concurrency, 4)
                print(f"{concurrency:>4} {name:>8} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.rps:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
