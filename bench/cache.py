"""Response cache and coalescing (loopback only, ~20 s): ``python bench/cache.py``.

An OpenAI-compatible upstream that answers instantly (a bare ASGI app under uvicorn, its
own process, counting chat calls at ``GET /count``) sits behind aiservice (uvicorn, 1
worker, its own process, ``cache.mode: on``, memory backend, access log off).

1. Latency at concurrency 1 over a keep-alive connection for a bounded time: uncached
   calls (``Cache-Control: no-cache, no-store``: the full upstream path) vs cache hits
   (the same request again). Prints p50/p99 and the ratio hit / uncached.
   Target: hit p50 below the uncached p50 (ratio < 1).
2. Coalescing: N concurrent identical requests (a fresh prompt per N), each on its own
   connection; prints the upstream calls they caused. Target: 1 for any N.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _common import Connection, gateway_config, gateway_pair, percentile_ms

PHASE_SECONDS = 3.0
MAX_REQUESTS = 10_000
WARMUP = 200
CONCURRENT = (1, 10, 100, 400)

UPSTREAM = r"""
import json, sys, uvicorn
CALLS = [0]
BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "GET":
        out = str(CALLS[0]).encode()
    else:
        CALLS[0] += 1
        out = BODY
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, lifespan="off")
"""


def request_body(text: str) -> bytes:
    return json.dumps(
        {"model": "bench", "messages": [{"role": "user", "content": text}], "max_tokens": 5}
    ).encode()


def config(upstream_port: int) -> str:
    return gateway_config(upstream_port, cache={"mode": "on"})


async def latency(port: int, headers: str, expect: str) -> list[float]:
    conn = await Connection.open(port)
    body = request_body("latency")
    for _ in range(WARMUP):
        await conn.send("POST", "/v1/chat/completions", body, headers)
    samples: list[float] = []
    deadline = time.perf_counter() + PHASE_SECONDS
    while time.perf_counter() < deadline and len(samples) < MAX_REQUESTS:
        start = time.perf_counter()
        status, fields, _ = await conn.send("POST", "/v1/chat/completions", body, headers)
        samples.append(time.perf_counter() - start)
        if status != 200 or fields.get("x-aiservice-cache") != expect:
            raise RuntimeError(f"expected a 200 {expect}, got {status} {fields}")
    conn.close()
    return samples


async def upstream_calls(port: int) -> int:
    conn = await Connection.open(port)
    _, _, body = await conn.send("GET", "/count")
    conn.close()
    return int(body)


async def coalescing(gw_port: int, up_port: int, n: int) -> tuple[int, dict[str, int]]:
    connections = await asyncio.gather(*(Connection.open(gw_port) for _ in range(n)))
    before = await upstream_calls(up_port)
    body = request_body(f"coalesce {n} {time.time_ns()}")
    results = await asyncio.gather(
        *(c.send("POST", "/v1/chat/completions", body) for c in connections)
    )
    for conn in connections:
        conn.close()
    statuses: dict[str, int] = {}
    for status, fields, _ in results:
        if status != 200:
            raise RuntimeError(f"request failed with {status}")
        key = fields.get("x-aiservice-cache", "?")
        statuses[key] = statuses.get(key, 0) + 1
    return await upstream_calls(up_port) - before, statuses


async def run(gw_port: int, up_port: int) -> None:
    uncached = await latency(gw_port, "Cache-Control: no-cache, no-store\r\n", "bypass")
    await latency(gw_port, "", "hit")  # the first request stores the entry
    hits = await latency(gw_port, "", "hit")
    print(f"{'path':>10} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
    for name, samples in (("uncached", uncached), ("cache hit", hits)):
        p50, p99 = percentile_ms(samples, 50), percentile_ms(samples, 99)
        print(f"{name:>10} {p50:>8.2f} {p99:>8.2f} {len(samples):>6}")
    ratio50 = percentile_ms(hits, 50) / percentile_ms(uncached, 50)
    ratio99 = percentile_ms(hits, 99) / percentile_ms(uncached, 99)
    print(f"hit / uncached latency ratio: p50 {ratio50:.2f}, p99 {ratio99:.2f} (target < 1)")
    for n in CONCURRENT:
        calls, statuses = await coalescing(gw_port, up_port, n)
        print(f"{n:>4} concurrent identical requests -> {calls} upstream call(s) {statuses}")


def main() -> int:
    with gateway_pair(UPSTREAM, config) as (up_port, gw_port):
        asyncio.run(run(gw_port, up_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
