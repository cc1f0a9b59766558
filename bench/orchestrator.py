"""Orchestrator benchmark (loopback only, ~15 s): ``python bench/orchestrator.py``.

* fan-out: 50 parallel steps of 100 ms → wall / 100 ms critical path   (target <= 1.20)
* chain:   5 sequential steps of 20 ms → wall / 100 ms critical path   (target <= 1.12)
* baselines, measured in the same run against the same stand-in: the same calls made
  directly on one warm ``aiohttp`` session (50 at once; 5 in a row), to separate this
  machine's HTTP cost from the orchestrator's
* overhead: per step, an orchestrated chain of 20 no-op steps minus 20 direct calls

The ML functions are a stand-in on plain asyncio streams (keep-alive HTTP/1.1, ``POST
/sleep/{ms}``) in a child process, so its own CPU cost stays tiny and it does not share a
GIL with the orchestrator. The orchestrator runs in-process behind its real ASGI app
(routing, validation, store writes, metrics, logs). Each case reports the median and the
range of several runs after a warm-up.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiohttp  # noqa: E402
import httpx  # noqa: E402  (only as the in-process ASGI client)
from _common import servers  # noqa: E402

from aiservice import Settings, create_app  # noqa: E402

RUNS = 7
FAN, FAN_MS, CHAIN, CHAIN_MS, NOOP = 50, 100, 5, 20, 20
CRITICAL_PATH = 0.1  # both the fan-out and the chain: 100 ms of sleeping on the longest path

STAND_IN = r"""
import asyncio, sys

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            ms = int(head.split(b" ", 2)[1].rsplit(b"/", 1)[-1])
            if ms:
                await asyncio.sleep(ms / 1000)
            body = b'{"slept":%d}' % ms
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def flows(base: str) -> dict[str, Any]:
    fan = {f"s{i}": {"url": f"{base}/sleep/{FAN_MS}"} for i in range(FAN)}
    chain = {f"c{i}": {"url": f"{base}/sleep/{CHAIN_MS}"} for i in range(CHAIN)}
    noop = {f"n{i}": {"url": f"{base}/sleep/0"} for i in range(NOOP)}
    for steps in (chain, noop):
        ids = list(steps)
        for prev, cur in zip(ids, ids[1:], strict=False):
            steps[cur]["depends_on"] = [prev]
    return {
        "fan": {"max_concurrency": 64, "steps": fan},
        "chain": {"steps": chain},
        "noop": {"steps": noop},
    }


async def samples(once: Callable[[], Awaitable[None]]) -> list[float]:
    await once()  # warm-up: connections, first-use imports
    out = []
    for _ in range(RUNS):
        start = time.perf_counter()
        await once()
        out.append(time.perf_counter() - start)
    return out


def orchestrated(client: httpx.AsyncClient, flow: str) -> Callable[[], Awaitable[None]]:
    async def once() -> None:
        response = await client.post(f"/orchestrate/{flow}", json={})
        ok = response.status_code == 200 and response.json()["status"] == "succeeded"
        assert ok, response.text

    return once


def direct(session: aiohttp.ClientSession, url: str, n: int, parallel: bool) -> Any:
    async def call() -> None:
        async with session.post(url) as response:
            assert response.status == 200
            await response.read()

    async def once() -> None:
        if parallel:
            await asyncio.gather(*(call() for _ in range(n)))
        else:
            for _ in range(n):
                await call()

    return once


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    low, mid, high = min(values) / scale, statistics.median(values) / scale, max(values) / scale
    return f"{fmt.format(mid)} ({fmt.format(low)}-{fmt.format(high)})"


async def measure(base: str) -> dict[str, list[float]]:
    settings = Settings(
        flows=flows(base), orchestrator={"max_concurrency": 64}, logging={"level": "WARNING"}
    )
    app = create_app(settings, configure_logs=False)
    results: dict[str, list[float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for flow in ("fan", "chain", "noop"):
                results[flow] = await samples(orchestrated(client, flow))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        fan_url, chain_url = f"{base}/sleep/{FAN_MS}", f"{base}/sleep/{CHAIN_MS}"
        results["direct fan"] = await samples(direct(session, fan_url, FAN, True))
        results["direct chain"] = await samples(direct(session, chain_url, CHAIN, False))
        results["direct noop"] = await samples(direct(session, f"{base}/sleep/0", NOOP, False))
    return results


def report(r: dict[str, list[float]]) -> None:
    ratio = CRITICAL_PATH
    print(
        f"fan-out {FAN} x {FAN_MS} ms : wall / critical path {spread(r['fan'], ratio)}"
        "  (target <= 1.20)"
    )
    print(
        f"  direct aiohttp fan-out : {spread(r['direct fan'], ratio)}; orchestrated / direct "
        f"{statistics.median(r['fan']) / statistics.median(r['direct fan']):.3f}"
    )
    print(
        f"chain {CHAIN} x {CHAIN_MS} ms     : wall / critical path {spread(r['chain'], ratio)}"
        "  (target <= 1.12)"
    )
    print(
        f"  direct aiohttp chain   : {spread(r['direct chain'], ratio)}; orchestrated / direct "
        f"{statistics.median(r['chain']) / statistics.median(r['direct chain']):.3f}"
    )
    per_step = [(a - b) / NOOP for a, b in zip(r["noop"], r["direct noop"], strict=True)]
    print(
        f"overhead per step      : {spread(per_step, 0.001, '{:.2f}')} ms "
        f"({NOOP} no-op steps vs {NOOP} direct calls, paired runs)"
    )


async def main() -> None:
    logging.getLogger("aiservice").setLevel(logging.WARNING)
    with servers({"fn": (STAND_IN, ())}) as ports:
        results = await measure(f"http://127.0.0.1:{ports['fn']}")
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
