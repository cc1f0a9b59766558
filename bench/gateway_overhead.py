"""LLM gateway overhead (loopback only, ~40 s): ``python bench/gateway_overhead.py``.

Three processes: an OpenAI-compatible upstream that answers instantly (a bare ASGI app
under uvicorn), aiservice (uvicorn, 1 worker, the ``openai`` provider, response cache off,
access log off, one client API key, no retries) and this client. The same chat completion
request is sent, after a warm-up, for a bounded time (``PHASE_SECONDS``, at most
``MAX_REQUESTS``) at concurrency 1 and 32 over keep-alive connections:

* direct:  client -> upstream
* gateway: client -> aiservice -> upstream (aiservice calls it with a pooled httpx client)

``--client httpx`` (default): each worker has its own ``httpx.AsyncClient`` holding one
keep-alive connection; httpx is the library aiservice uses for its own upstream call.
"direct" is then what an application calling the upstream itself with httpx gets, and
the ratio prices what the gateway adds over that, not httpx against something else.
``--client raw``: a minimal HTTP/1.1 client, one connection per worker, costing almost
nothing; "direct" then measures the bare upstream server, a much harder baseline.

Prints, per concurrency: p50/p99 latency direct and through the gateway, the added
latency and the throughput ratio (gateway / direct).
Targets: p50 added latency <= 2 ms at concurrency 1; throughput ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from _common import Connection, gateway_config, gateway_pair, percentile_ms

PHASE_SECONDS = 4.0
MAX_REQUESTS = 20_000
WARMUP = 300
CONCURRENCY = (1, 32)
API_KEY = "bench-client-key"
PATH = "/v1/chat/completions"

UPSTREAM = r"""
import json, sys, uvicorn
BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, lifespan="off", backlog=4096)
"""

REQUEST_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
).encode()

CLIENTS = {
    "httpx": "httpx.AsyncClient, one per worker with one keep-alive connection "
    "(the library aiservice calls the upstream with)",
    "raw": "a minimal HTTP/1.1 client, one keep-alive connection per worker",
}

Post = Callable[[], Awaitable[int]]
"""One request; returns the status code."""


async def open_posts(kind: str, port: int, concurrency: int, stack: AsyncExitStack) -> list[Post]:
    """One ``Post`` per worker, over keep-alive connections closed with ``stack``."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    if kind == "raw":
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k != "Content-Type")
        posts: list[Post] = []
        for _ in range(concurrency):
            conn = await Connection.open(port)
            stack.callback(conn.close)

            async def post(conn: Connection = conn) -> int:
                return (await conn.send("POST", PATH, REQUEST_BODY, extra))[0]

            posts.append(post)
        return posts
    import httpx

    # A client per worker: one shared pool of 32 would measure httpx's pool bookkeeping
    # (it grows with the pool's size) on the client side, capping "direct" far below what
    # the upstream serves.
    one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    posts = []
    for _ in range(concurrency):
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, limits=one)
        )

        async def post_httpx(client: httpx.AsyncClient = client) -> int:
            return (await client.post(PATH, content=REQUEST_BODY)).status_code

        posts.append(post_httpx)
    return posts


async def run_phase(kind: str, port: int, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) and throughput (req/s) for ``PHASE_SECONDS`` at ``concurrency``."""
    async with AsyncExitStack() as stack:
        posts = await open_posts(kind, port, concurrency, stack)

        async def warm(post: Post) -> None:  # every connection open, the code paths warm
            for _ in range(max(1, WARMUP // concurrency)):
                await post()

        await asyncio.gather(*(warm(p) for p in posts))
        latencies: list[float] = []
        deadline = time.perf_counter() + PHASE_SECONDS

        async def worker(post: Post) -> None:
            while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
                start = time.perf_counter()
                status = await post()
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    raise RuntimeError(f"{PATH} answered {status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(p) for p in posts))
        return latencies, len(latencies) / (time.perf_counter() - started)


def report(
    concurrency: int, direct: list[float], gateway: list[float], rps: tuple[float, float]
) -> None:
    for name, lat, r in (("direct", direct, rps[0]), ("gateway", gateway, rps[1])):
        print(
            f"{concurrency:>4} {name:>8} {percentile_ms(lat, 50):>8.2f} "
            f"{percentile_ms(lat, 99):>8.2f} {r:>8.0f}"
        )
    added50 = percentile_ms(gateway, 50) - percentile_ms(direct, 50)
    added99 = percentile_ms(gateway, 99) - percentile_ms(direct, 99)
    print(
        f"     concurrency {concurrency}: added latency p50 {added50:.2f} ms, "
        f"p99 {added99:.2f} ms; throughput ratio {rps[1] / rps[0]:.2f}x"
    )


def config(upstream_port: int) -> str:
    return gateway_config(upstream_port, auth={"api_keys": [API_KEY]}, cache={"mode": "off"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=sorted(CLIENTS), default="httpx")
    kind = parser.parse_args().client
    with gateway_pair(UPSTREAM, config) as (up_port, gw_port):
        print(f"client:  {CLIENTS[kind]}")
        print("direct:  client -> upstream (bare ASGI app, uvicorn)")
        print("gateway: client -> aiservice (uvicorn, 1 worker) -> httpx pool -> upstream")
        print(f"{'conc':>4} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for concurrency in CONCURRENCY:
            direct, direct_rps = asyncio.run(run_phase(kind, up_port, concurrency))
            gateway, gateway_rps = asyncio.run(run_phase(kind, gw_port, concurrency))
            report(concurrency, direct, gateway, (direct_rps, gateway_rps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
