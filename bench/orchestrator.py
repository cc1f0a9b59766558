"""Orchestrator benchmark (loopback only, a few seconds): ``python bench/orchestrator.py``.

* fan-out: 50 parallel steps of 100 ms   → wall / 100 ms        (target <= 1.10)
* chain:   5 sequential steps of 20 ms   → wall / 100 ms        (target <= 1.10)
* overhead: per step, orchestrated chain of no-op steps minus the same calls made directly
* baseline: the 50 calls made directly with httpx, to separate this machine's HTTP cost
  from the orchestrator's

The ML functions are a uvicorn server in a child process; the orchestrator runs in-process behind
its real ASGI app (routing, validation, store writes, metrics, logs). Each case reports the
median of several runs after a warm-up.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from _common import free_port  # noqa: E402

from aiservice import Settings, create_app  # noqa: E402

RUNS = 5


async def ml_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI function ``POST /sleep/{ms}``: the server's own CPU cost stays tiny, so
    the ratios measure the orchestrator rather than the fake functions."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        more = (await receive()).get("more_body", False)
    ms = int(scope["path"].rsplit("/", 1)[-1])
    await asyncio.sleep(ms / 1000)
    body = b'{"slept":%d}' % ms
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def ml_server() -> tuple[str, subprocess.Popen[bytes]]:
    """The functions run in their own process, as they would in production (and so that
    the server and the orchestrator do not share one GIL)."""
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{base}/sleep/0", timeout=1).raise_for_status()
            return base, child
        except httpx.HTTPError:
            time.sleep(0.05)
    child.kill()
    raise RuntimeError("the ML functions server did not start")


def flows(base: str) -> dict[str, Any]:
    fan = {f"s{i}": {"url": f"{base}/sleep/100"} for i in range(50)}
    chain = {f"c{i}": {"url": f"{base}/sleep/20"} for i in range(5)}
    noop = {f"n{i}": {"url": f"{base}/sleep/0"} for i in range(20)}
    for steps in (chain, noop):
        ids = list(steps)
        for prev, cur in zip(ids, ids[1:], strict=False):
            steps[cur]["depends_on"] = [prev]
    return {
        "fan": {"max_concurrency": 64, "steps": fan},
        "chain": {"steps": chain},
        "noop": {"steps": noop},
    }


async def timed(client: httpx.AsyncClient, flow: str) -> float:
    start = time.perf_counter()
    response = await client.post(f"/orchestrate/{flow}", json={})
    elapsed = time.perf_counter() - start
    assert response.status_code == 200 and response.json()["status"] == "succeeded", response.text
    return elapsed


async def median(client: httpx.AsyncClient, flow: str) -> float:
    await timed(client, flow)  # warm-up: connections, first-use imports
    return statistics.median([await timed(client, flow) for _ in range(RUNS)])


async def direct_chain(base: str, n: int) -> float:
    async with httpx.AsyncClient() as client:
        await client.post(f"{base}/sleep/0", json=None)
        samples = []
        for _ in range(RUNS):
            start = time.perf_counter()
            for _ in range(n):
                (await client.post(f"{base}/sleep/0")).raise_for_status()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def direct_fan(base: str, n: int) -> float:
    """The same calls made directly, one warm httpx client (one connection) per call: the
    machine's own cost for 50 concurrent HTTP calls, without any orchestration."""
    clients = [httpx.AsyncClient() for _ in range(n)]
    try:

        async def once() -> float:
            start = time.perf_counter()
            results = await asyncio.gather(*(c.post(f"{base}/sleep/100") for c in clients))
            assert all(r.status_code == 200 for r in results)
            return time.perf_counter() - start

        await once()
        return statistics.median([await once() for _ in range(RUNS)])
    finally:
        for client in clients:
            await client.aclose()


async def main() -> None:
    logging.getLogger("aiservice").setLevel(logging.WARNING)
    base, server = ml_server()
    settings = Settings(
        flows=flows(base),
        orchestrator={"max_concurrency": 64},
        logging={"level": "WARNING"},
    )
    app = create_app(settings, configure_logs=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                fan = await median(client, "fan")
                chain = await median(client, "chain")
                noop = await median(client, "noop")
        direct = await direct_chain(base, 20)
        raw_fan = await direct_fan(base, 50)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for label, wall in (("fan-out 50 x 100 ms", fan), ("chain    5 x  20 ms", chain)):
        print(f"{label} : wall {wall * 1000:7.1f} ms  ratio {wall / 0.1:.3f}  (target <= 1.10)")
    print(
        f"  baseline: the 50 calls made directly (one warm httpx client each): "
        f"{raw_fan * 1000:.1f} ms (ratio {raw_fan / 0.1:.3f}); orchestrated / direct = "
        f"{fan / raw_fan:.3f}"
    )
    print(
        f"overhead per step   : {(noop - direct) / 20 * 1000:.2f} ms "
        f"(20 no-op steps {noop * 1000:.1f} ms vs direct calls {direct * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        uvicorn.run(
            ml_app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error", access_log=False
        )
    else:
        asyncio.run(main())
