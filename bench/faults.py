"""The gateway against a faulty primary (loopback only, ≤ ~90 s): ``python bench/faults.py``.

Four processes: a faulty OpenAI-compatible primary and a healthy fallback (raw asyncio
servers from ``tests/support/faulty_upstream.py``), aiservice under uvicorn (model
``bench`` = primary then fallback, retries 1, circuit breaker on, provider timeout 1 s,
``limits.requests.deadline_seconds`` 5 s), and this client.

``--rate`` (default 0.3) of the primary's calls fail, evenly: HTTP 500, 429 with
``Retry-After: 1``, a connection reset, a stall past the provider timeout. The client
sends ``--requests`` (default 2000) chat completions, one in four streamed, at
``--concurrency`` (default 16), stopping early after ``--seconds`` (default 60).

A request succeeds when it is a 200 whose reply echoes its own prompt (for a stream: the
deltas, ending with ``[DONE]`` and no error event). Prints the success rate, p50/p99/max
latency against the deadline and the faults dealt. Targets: success ≥ 99.5 %, max
latency < deadline. The deadline is kept by the gateway's own clock: on a machine so
loaded that the gateway process waits seconds for a CPU (compare the load average printed
with the core count), client-side latency can exceed it by that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from _common import GATEWAY, ROOT, free_port, percentile_ms, stop, wait_ready

DEADLINE = 5.0
PROVIDER_TIMEOUT = 1.0


def config(primary: str, backup: str) -> str:
    common = {"type": "openai", "api_key": "sk-bench", "retry_backoff": 0.05}
    return json.dumps(
        {
            "logging": {"level": "CRITICAL", "access_log": False},
            "cache": {"mode": "off"},
            "limits": {"requests": {"deadline_seconds": DEADLINE}},
            "providers": {
                "primary": {
                    **common,
                    "base_url": primary + "/v1",
                    "timeout": PROVIDER_TIMEOUT,
                    "max_retries": 1,
                    "failure_threshold": 3,
                    "cooldown_seconds": 2,
                },
                "backup": {**common, "base_url": backup + "/v1", "timeout": 10},
            },
            "models": {
                "bench": [
                    {"provider": "primary", "model": "m1"},
                    {"provider": "backup", "model": "m2"},
                ]
            },
        }
    )


UPSTREAM = r"""
import sys
sys.path.insert(0, sys.argv[2])
from tests.support.faulty_upstream import FaultyUpstream, random_plan
rate, timeout = float(sys.argv[3]), float(sys.argv[4])
faults = ["500", "429", "reset", "stall"]
plan = random_plan(rate, faults) if rate else (lambda: "ok")
prefix = "echo: " if rate else "backup: "
upstream = FaultyUpstream(plan, stall_seconds=timeout * 3, retry_after="1", reply_prefix=prefix)
upstream.run_forever(int(sys.argv[1]))
"""
"""A faulty upstream process: ``-c UPSTREAM <port> <repo root> <fault rate> <timeout>``."""


@contextmanager
def processes(rate: float) -> Iterator[tuple[str, str, str]]:
    """The faulty primary, the healthy fallback and the gateway, each its own process."""
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(config(urls[0], urls[1]))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    upstream = [sys.executable, "-c", UPSTREAM]
    procs = [
        subprocess.Popen([*upstream, str(ports[0]), str(ROOT), str(rate), str(PROVIDER_TIMEOUT)]),
        subprocess.Popen([*upstream, str(ports[1]), str(ROOT), "0", str(PROVIDER_TIMEOUT)]),
        subprocess.Popen([sys.executable, "-c", GATEWAY, str(ports[2]), cfg.name], env=env),
    ]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(port, proc)
        yield urls[0], urls[1], urls[2]
    finally:
        stop(procs)
        os.unlink(cfg.name)


def succeeded(response: httpx.Response, prompt: str, stream: bool) -> bool:
    if response.status_code != 200:
        return False
    if not stream:
        return str(response.json()["choices"][0]["message"]["content"]).endswith(prompt)
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    if not data or data[-1] != "[DONE]":
        return False
    chunks = [json.loads(d) for d in data[:-1]]
    if any("error" in c for c in chunks):
        return False
    text = "".join((c["choices"] or [{}])[0].get("delta", {}).get("content") or "" for c in chunks)
    return text.endswith(prompt)


async def run(base: str, requests: int, concurrency: int, seconds: float) -> None:
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.monotonic() + seconds
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            if time.monotonic() > stop_at:
                return
            stream, prompt = i % 4 == 0, f"request {i}"
            body = {
                "model": "bench",
                "messages": [{"role": "user", "content": prompt}],
                "stream": stream,
            }
            started = time.monotonic()
            try:
                response = await http.post("/v1/chat/completions", json=body)
                ok = succeeded(response, prompt, stream)
                detail = f"{response.status_code} {response.text[:120]}"
            except httpx.HTTPError as exc:
                ok, detail = False, repr(exc)
            latencies.append(time.monotonic() - started)
            if not ok:
                failures.append(detail)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        begun = time.monotonic()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        wall = time.monotonic() - begun
        metrics = (await http.get("/metrics")).text
    done = len(latencies)
    rate = 100 * (done - len(failures)) / done
    trips = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("aiservice_llm_cooldowns_total{")
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"requests: {done} in {wall:.1f} s at concurrency {concurrency} (load average {load})")
    print(f"success: {rate:.2f} % ({len(failures)} failed)  target >= 99.5 %")
    p50, p99 = percentile_ms(latencies, 50), percentile_ms(latencies, 99)
    print(
        f"latency ms: p50 {p50:.0f}  p99 {p99:.0f}"
        f"  max {max(latencies) * 1000:.0f}  deadline {DEADLINE * 1000:.0f}"
        f"  ({'within' if max(latencies) < DEADLINE else 'OVER'} the deadline)"
    )
    print(f"circuit breaker openings: {trips:.0f}")
    for failure in failures[:5]:
        print("  failed:", failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=0.3)
    args = parser.parse_args()
    with processes(args.rate) as (primary, backup, base):
        asyncio.run(run(base, args.requests, args.concurrency, args.seconds))
        dealt = httpx.get(primary + "/stats").json()
        fallback = sum(httpx.get(backup + "/stats").json().values())
    calls = ", ".join(f"{k} {v}" for k, v in sorted(dealt.items()))
    print(f"primary calls: {calls}; fallback calls: {fallback}")


if __name__ == "__main__":
    main()
