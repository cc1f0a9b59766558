"""LLM gateway overhead (loopback only, ~30 s): ``python bench/gateway_overhead.py``.

An OpenAI-compatible upstream that answers instantly (a bare ASGI app under uvicorn, its
own process) is called with the same chat completion request directly and through
aiservice (uvicorn, 1 worker, its own process, the ``openai`` provider, response cache
off, access log off, one client API key). Each phase runs at concurrency 1 and 32 for a
bounded time over keep-alive connections from a minimal HTTP/1.1 client, so the client
costs little next to the servers.

Prints, per concurrency: p50/p99 latency direct and through the gateway, the added
latency, and the throughput ratio (gateway / direct).
Targets: p50 added latency <= 2 ms at concurrency 1; throughput ratio >= 0.5.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE_SECONDS = 4.0
MAX_REQUESTS = 20_000
WARMUP = 300
API_KEY = "bench-client-key"

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
            access_log=False, lifespan="off")
"""

GATEWAY = r"""
import sys, uvicorn
from aiservice import create_app, load_settings
app = create_app(load_settings(sys.argv[2], environ={}, dotenv_file=None))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, workers=1)
"""

REQUEST_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config(upstream_port: int) -> str:
    return json.dumps(
        {
            "logging": {"level": "WARNING", "access_log": False},
            "auth": {"api_keys": [API_KEY]},
            "cache": {"mode": "off"},
            "providers": {
                "up": {
                    "type": "openai",
                    "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-bench",
                    "max_retries": 0,
                }
            },
            "models": {"bench": [{"provider": "up", "model": "bench"}]},
        }
    )


class Connection:
    """One keep-alive HTTP/1.1 connection; ``post`` returns the status code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next(
            int(v)
            for k, _, v in (ln.partition(":") for ln in lines[1:])
            if k.lower() == "content-length"
        )
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def run_phase(port: int, path: str, concurrency: int) -> tuple[list[float], float]:
    """Latencies (s) and throughput (req/s) for ``PHASE_SECONDS`` at ``concurrency``."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    for conn in connections:  # warm the connection and the server's code paths
        for _ in range(max(1, WARMUP // concurrency)):
            await conn.post(path, REQUEST_BODY)
    latencies: list[float] = []
    deadline = time.perf_counter() + PHASE_SECONDS

    async def worker(conn: Connection) -> None:
        while time.perf_counter() < deadline and len(latencies) < MAX_REQUESTS:
            start = time.perf_counter()
            status = await conn.post(path, REQUEST_BODY)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return latencies, len(latencies) / elapsed


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def main() -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    up_port, gw_port = free_port(), free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(config(up_port))  # JSON is YAML
    procs = [
        subprocess.Popen([sys.executable, "-c", UPSTREAM, str(up_port)], env=env),
        subprocess.Popen([sys.executable, "-c", GATEWAY, str(gw_port), cfg.name], env=env),
    ]
    try:
        wait_ready(up_port, procs[0])
        wait_ready(gw_port, procs[1])
        print(f"{'conc':>4} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for concurrency in (1, 32):
            direct, direct_rps = asyncio.run(
                run_phase(up_port, "/v1/chat/completions", concurrency)
            )
            gateway, gateway_rps = asyncio.run(
                run_phase(gw_port, "/v1/chat/completions", concurrency)
            )
            for name, lat, rps in (
                ("direct", direct, direct_rps),
                ("gateway", gateway, gateway_rps),
            ):
                print(
                    f"{concurrency:>4} {name:>8} {percentile(lat, 50) * 1000:>8.2f} "
                    f"{percentile(lat, 99) * 1000:>8.2f} {rps:>8.0f}"
                )
            added50 = (percentile(gateway, 50) - percentile(direct, 50)) * 1000
            added99 = (percentile(gateway, 99) - percentile(direct, 99)) * 1000
            print(
                f"     concurrency {concurrency}: added latency p50 {added50:.2f} ms, "
                f"p99 {added99:.2f} ms; throughput ratio {gateway_rps / direct_rps:.2f}x"
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        os.unlink(cfg.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
