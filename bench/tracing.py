"""Gateway throughput with OpenTelemetry tracing off and on (loopback only, ~60 s):
``python bench/tracing.py [--runs 3] [--seconds 4] [--load wrk|raw]``.

Processes: the instant OpenAI-compatible upstream of ``gateway_overhead.py``, an OTLP/HTTP
receiver that reads and counts every export (a bare ASGI app under uvicorn), and two
aiservice processes (uvicorn, 1 worker, cache off, access log off, one API key) that differ
only in ``tracing.enabled``: ``on`` exports a server span and an LLM client span per request
to the receiver through the BatchSpanProcessor.

Each run loads ``off`` and ``on`` in turn (the order alternates) at c=32 and then at c=1.
Reported per run and as medians: the ratio on/off of req/s at c=32, and the ratio of the
gateway process's CPU time per request (``/proc/<pid>/stat``, off/on: the throughput one
core would give), which neighbours on a shared machine disturb far less than req/s; and
the p50 latency added at c=1. The receiver's count of exported spans shows the spans did leave
(a full queue drops spans rather than slowing requests down).
The tracing work is also timed alone in a child process (CPU per request for a server span
and an LLM span, exported to the receiver), and set against the untraced request's CPU:
on a busy machine that share is the steadier number.
Target: tracing on costs at most a few percent (ratio >= 0.95).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _common import (
    GATEWAY,
    ROOT,
    Connection,
    WrkResult,
    free_port,
    gateway_config,
    percentile_ms,
    servers,
    stop,
    wait_ready,
    wrk,
)
from gateway_overhead import API_KEY, HEADERS, PATH, REQUEST_BODY, UPSTREAM

RECEIVER = r"""
import json, sys, uvicorn
counts = {"exports": 0, "bytes": 0}
EMPTY = [(b"content-type", b"application/x-protobuf"), (b"content-length", b"0")]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        body = json.dumps(counts).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    counts["exports"] += 1
    counts["bytes"] += size
    await send({"type": "http.response.start", "status": 200, "headers": EMPTY})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, lifespan="off")
"""

WARMUP_SECONDS = 1.0

SPANS = r"""
import sys, time
from aiservice import Settings
from aiservice.observability import context, tracing
from aiservice.observability.otel import OtelTracing
endpoint, n = sys.argv[1], int(sys.argv[2])
tracer = OtelTracing(Settings(tracing={"enabled": True, "exporter": {"endpoint": endpoint}}))
tracing.install(tracer)
ANSWER = {"model": "bench", "id": "chatcmpl-bench", "choices": [{"finish_reason": "stop"}],
          "usage": {"prompt_tokens": 5, "completion_tokens": 1}}

def request(traced):  # what one traced chat request adds: the server span and the LLM span
    ctx = context.start_trace()  # done with tracing off too (logs, propagation)
    with context.trace(ctx):
        if not traced:
            return
        server = tracer.server_span(ctx, "POST", {"http.request.method": "POST",
                                                  "url.path": "/v1/chat/completions",
                                                  "url.scheme": "http"})
        with tracing.llm_span("chat", "openai", "up", "bench") as span:
            span.set("aiservice.attempt", 1)
            span.llm_result(ANSWER)
        server.rename("POST /v1/chat/completions")
        server.set("http.route", "/v1/chat/completions")
        server.set("http.response.status_code", 200)
        server.__exit__(None, None, None)

def cost(mode):
    tracer.bound = 2**64 if mode == "sampled" else 0
    for _ in range(n // 10):
        request(mode != "off")
    tracer.flush()
    start = time.process_time()
    for _ in range(n):
        request(mode != "off")
    tracer.flush()  # the export thread's encoding and posting count too
    return (time.process_time() - start) / n * 1e6

base, sampled, unsampled = (min(cost(m) for _ in range(3)) for m in ("off", "sampled", "unsampled"))
print(sampled - base, unsampled - base)
tracer.shutdown()
"""
"""The CPU one traced request spends on tracing alone (spans built, encoded, exported
to the receiver), sampled and unsampled, beyond the trace context every request has:
``-c SPANS <endpoint> <requests>``."""


async def raw_phase(port: int, concurrency: int, seconds: float) -> WrkResult:
    extra = f"Authorization: {HEADERS['Authorization']}\r\n"
    conns = [await Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status = (await conn.send("POST", PATH, REQUEST_BODY, extra))[0]
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{PATH} answered {status}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    return WrkResult(
        len(latencies) / elapsed,
        percentile_ms(latencies, 50),
        percentile_ms(latencies, 99),
        len(latencies),
    )


def load(kind: str, port: int, concurrency: int, seconds: float) -> WrkResult:
    if kind == "wrk":
        return wrk(port, PATH, REQUEST_BODY, HEADERS, concurrency, seconds)
    return asyncio.run(raw_phase(port, concurrency, seconds))


def received(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as response:
        counts: dict[str, int] = json.loads(response.read())
        return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--load", choices=("wrk", "raw"), default=None)
    args = parser.parse_args()
    kind = args.load or ("wrk" if shutil.which("wrk") else "raw")
    here = Path(__file__).resolve().parent
    configs = {name: here / f".tracing_{name}.yaml" for name in ("off", "on")}
    with servers({"upstream": (UPSTREAM, ("1",)), "receiver": (RECEIVER, ())}) as base:
        common = {"auth": {"api_keys": [API_KEY]}, "cache": {"mode": "off"}}
        endpoint = f"http://127.0.0.1:{base['receiver']}"
        tracing = {"enabled": True, "exporter": {"endpoint": endpoint}}
        configs["off"].write_text(gateway_config(base["upstream"], **common))
        configs["on"].write_text(gateway_config(base["upstream"], **common, tracing=tracing))
        try:
            with gateways(configs) as procs:
                rows = measure(kind, procs, args.runs, args.seconds)
                time.sleep(6)  # the batch processor's schedule delay (5 s): last export
                counts = received(base["receiver"])
            spans = span_cost(endpoint)
        finally:
            for path in configs.values():
                path.unlink(missing_ok=True)
    report(rows, counts, spans)
    return 0


def span_cost(endpoint: str, requests: int = 20000) -> tuple[float, float]:
    """CPU µs per request of the tracing work alone, (sampled, unsampled): min of 3."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", SPANS, endpoint, str(requests)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


@dataclass(frozen=True)
class Phase:
    c32: WrkResult
    c1: WrkResult
    cpu_us: float  # gateway CPU per request at c=32


@contextmanager
def gateways(configs: dict[str, Path]) -> Iterator[dict[str, tuple[int, int]]]:
    """Start one aiservice per config; yields ``name: (port, pid)``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    ports = {name: free_port() for name in configs}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", GATEWAY, str(ports[name]), str(path)], env=env
        )
        for name, path in configs.items()
    }
    try:
        for name, proc in procs.items():
            wait_ready(ports[name], proc)
        yield {name: (ports[name], proc.pid) for name, proc in procs.items()}
    finally:
        stop(list(procs.values()))


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads: the span exporter's included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    kind: str, procs: dict[str, tuple[int, int]], runs: int, seconds: float
) -> list[dict[str, Phase]]:
    print(f"load: {kind}; {seconds:g} s per phase; c=32 then c=1")
    print(f"{'run':>3} {'tracing':>7} {'c32 req/s':>10} {'CPU us/req':>10} {'c1 p50 ms':>10}")
    rows = []
    for run in range(runs):
        order = ["off", "on"] if run % 2 == 0 else ["on", "off"]
        row: dict[str, Phase] = {}
        for name in order:
            port, pid = procs[name]
            load(kind, port, 32, WARMUP_SECONDS)
            before = cpu_seconds(pid)
            r32 = load(kind, port, 32, seconds)
            cpu = (cpu_seconds(pid) - before) / r32.requests * 1e6
            r1 = load(kind, port, 1, max(1, round(seconds / 2)))  # wrk: whole seconds
            row[name] = Phase(r32, r1, cpu)
            print(f"{run:>3} {name:>7} {r32.rps:>10.0f} {cpu:>10.0f} {r1.p50_ms:>10.3f}")
        rows.append(row)
    return rows


def report(
    rows: list[dict[str, Phase]], counts: dict[str, int], spans: tuple[float, float]
) -> None:
    ratios = [row["on"].c32.rps / row["off"].c32.rps for row in rows]
    cpu = [row["off"].cpu_us / row["on"].cpu_us for row in rows]
    added = [row["on"].c1.p50_ms - row["off"].c1.p50_ms for row in rows]
    traced = sum(row["on"].c32.requests + row["on"].c1.requests for row in rows)
    print(f"ratio on/off req/s at c=32 per run: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"ratio off/on CPU per request per run: {', '.join(f'{r:.3f}' for r in cpu)}")
    print(
        f"median: req/s ratio {statistics.median(ratios):.3f}, CPU ratio "
        f"{statistics.median(cpu):.3f} (target >= 0.95); c=1 p50 added "
        f"{statistics.median(added) * 1000:.0f} us"
    )
    off_cpu = statistics.median(row["off"].cpu_us for row in rows)
    sampled, unsampled = spans
    print(
        f"tracing alone: {sampled:.0f} us CPU per request sampled, {unsampled:.0f} us "
        f"unsampled = {sampled / off_cpu:.1%} / {unsampled / off_cpu:.1%} of the median "
        f"untraced request ({off_cpu:.0f} us): ratio ~{off_cpu / (off_cpu + sampled):.3f}"
    )
    print(
        f"receiver: {counts['exports']} exports, {counts['bytes'] / 1e6:.1f} MB for "
        f"~{traced} measured traced requests (warm-ups too)"
    )


if __name__ == "__main__":
    sys.exit(main())
