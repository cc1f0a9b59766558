"""Response cache and coalescing (loopback only, ~20 s): ``python bench/cache.py``;
the cache's own CPU in-process (~30 s): ``python bench/cache.py --cpu [--before SRC]``.

An OpenAI-compatible upstream that answers instantly (a bare ASGI app under uvicorn, its
own process, counting chat calls at ``GET /count``) sits behind aiservice (uvicorn, 1
worker, its own process, ``cache.mode: on``, memory backend, access log off).

1. Latency at concurrency 1 over a keep-alive connection for a bounded time: uncached
   calls (``Cache-Control: no-cache, no-store``: the full upstream path) vs cache hits
   (the same request again). Prints p50/p99 and the ratio hit / uncached.
   Target: hit p50 below the uncached p50 (ratio < 1).
2. Coalescing: N concurrent identical requests (a fresh prompt per N), each on its own
   connection; prints the upstream calls they caused. Target: 1 for any N.

``--cpu``: CPU time per ``ResponseCache`` call (memory backend, an upstream that parses a
canned ``chat.completion``, no I/O), best of ``CPU_ROUNDS``: a non-stream miss (a fresh key
each call, entry stored), a non-stream hit, and a streamed hit on the entry a non-stream
miss stored, for a short answer and a long one with tool calls; then a streamed miss and
hit of a 102-chunk stream. Only the cache's work
differs between runs, so ``--before SRC`` (another source tree, in its own process) shows
what a change of the cache saves, unmoved by the neighbours' load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


CPU_ROUNDS = 7
CPU_CALLS = 2000
CPU_BENCH = r"""
import asyncio, json, sys, time
from aiservice.cache.memory import MemoryBackend
from aiservice.config import Settings
from aiservice.llm.cache.policy import CachePolicy
from aiservice.llm.cache.responses import ResponseCache, Upstream

ROUNDS, CALLS = int(sys.argv[1]), int(sys.argv[2])
ON = CachePolicy(read=True, write=True)
TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)
CALL = {"type": "function", "function": {"name": "lookup", "arguments": '{"q": "fox"}'}}
def completion(message):
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "bench",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 400, "total_tokens": 450},
    }).encode()
ANSWERS = {
    "short": completion({"content": "ok"}),
    "long": completion({"content": TEXT, "tool_calls": [dict(CALL, id=f"c{i}") for i in range(3)]}),
}

def chunk(delta, **extra):
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
            "model": "bench", "choices": [{"index": 0, "delta": delta, **extra}]}
LINES = [json.dumps(c).encode() for c in (
    [chunk({"role": "assistant", "content": ""})]
    + [chunk({"content": w + " "}) for w in TEXT.split()[:100]]
    + [chunk({}, finish_reason="stop")]
)]

async def stream():
    for line in LINES:  # a 102-chunk stream, parsed as a provider would
        yield json.loads(line)

async def main():
    settings = Settings(cache={"namespace": "b", "max_entries": 10**6, "max_bytes": 2**31})
    out = {}
    for name, body in ANSWERS.items():
        async def complete():
            return json.loads(body)  # what a provider hands the cache
        up = Upstream(complete, stream, lambda: {"provider": "p", "model": "m"})
        cache = ResponseCache(MemoryBackend(settings), settings)
        async def miss(i):
            await cache.complete(f"{name}:{i}", ON, up)
        async def hit(i):
            await cache.complete(f"{name}:0", ON, up)
        async def streamed(key):
            answer = await cache.stream(key, ON, up)
            async for _ in answer.chunks:
                pass
        async def stream_hit(i):
            await streamed(f"{name}:0")
        calls = [("miss", miss), ("hit", hit), ("stream hit", stream_hit)]
        if name == "long":  # the streamed path, for reference (the answer does not matter)
            async def stream_miss(i):
                await streamed(f"stream:{i}")
            async def stream_replay(i):
                await streamed("stream:0")
            calls += [("102-chunk stream miss", stream_miss)]
            calls += [("102-chunk stream hit", stream_replay)]
        counter = iter(range(10**9))
        for kind, call in calls:
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.process_time()
                for _ in range(CALLS):
                    await call(next(counter))
                best = min(best, time.process_time() - started)
            out[f"{name} {kind}"] = best / CALLS * 1e6
    print(json.dumps(out))

asyncio.run(main())
"""


def cpu_run(src: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, "-c", CPU_BENCH, str(CPU_ROUNDS), str(CPU_CALLS)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def cpu(before: Path | None) -> None:
    trees = {"after": Path(__file__).resolve().parent.parent / "src"}
    if before is not None:
        trees["before"] = before.resolve()
    # Alternated, best of two runs each: a neighbour's burst does not land on one tree only.
    results = {name: cpu_run(src) for name, src in trees.items()}
    for name, src in reversed(trees.items()):
        again = cpu_run(src)
        results[name] = {row: min(v, again[row]) for row, v in results[name].items()}
    names = list(results)
    print(f"{'us CPU per call (best of ' + str(CPU_ROUNDS) + ')':<34}", *(f"{n:>8}" for n in names))
    for row in results["after"]:
        values = [results[n][row] for n in names]
        saved = f"  {1 - values[0] / values[1]:+.0%} saved" if len(values) == 2 else ""
        print(f"{row:<34}", *(f"{v:>8.1f}" for v in values), saved)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cpu", action="store_true", help="the in-process CPU measure")
    parser.add_argument("--before", type=Path, help="another src tree, run as 'before'")
    args = parser.parse_args()
    if args.cpu:
        cpu(args.before)
        return 0
    with gateway_pair(UPSTREAM, config) as (up_port, gw_port):
        asyncio.run(run(gw_port, up_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
