"""Helpers shared by the loopback benchmarks (run them as ``python bench/<name>.py``).

Ports, server processes, a minimal keep-alive HTTP/1.1 client (so the client costs little
next to the servers it measures) and percentiles. Only the standard library: the
benchmarks start their servers in child processes.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "GATEWAY",
    "ROOT",
    "Connection",
    "free_port",
    "gateway_config",
    "gateway_pair",
    "percentile",
    "percentile_ms",
    "wait_ready",
]

ROOT = Path(__file__).resolve().parents[1]

GATEWAY = r"""
import sys, uvicorn
from aiservice import create_app, load_settings
app = create_app(load_settings(sys.argv[2], environ={}, dotenv_file=None))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error",
            access_log=False, workers=1, backlog=4096)
"""
"""aiservice under uvicorn (1 worker, access log off): ``-c GATEWAY <port> <config file>``."""


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway_config(upstream_port: int, **sections: object) -> str:
    """An aiservice config (JSON) routing model ``bench`` to the OpenAI-compatible upstream
    on ``upstream_port``, with logging quiet and no retries; ``sections`` add or replace
    top-level keys (``cache``, ``auth``, ...)."""
    return json.dumps(
        {
            "logging": {"level": "WARNING", "access_log": False},
            **sections,
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


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Block until ``port`` accepts connections; raise if ``proc`` exits or time runs out."""
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


@contextmanager
def gateway_pair(
    upstream: str, config: Callable[[int], str], gateway: str = GATEWAY
) -> Iterator[tuple[int, int]]:
    """Run the ``upstream`` script and aiservice each in its own process; yields
    ``(upstream port, gateway port)`` once both listen, and stops both afterwards.

    Both scripts get their port as ``argv[1]``; the gateway gets as ``argv[2]`` a file
    holding ``config(upstream port)`` (a JSON text: JSON is YAML).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    up_port, gw_port = free_port(), free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(config(up_port))
    procs = [
        subprocess.Popen([sys.executable, "-c", upstream, str(up_port)], env=env),
        subprocess.Popen([sys.executable, "-c", gateway, str(gw_port), cfg.name], env=env),
    ]
    try:
        wait_ready(up_port, procs[0])
        wait_ready(gw_port, procs[1])
        yield up_port, gw_port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        os.unlink(cfg.name)


class Connection:
    """One keep-alive HTTP/1.1 connection; ``send`` returns (status, headers, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; ``headers`` are extra ``Name: value\\r\\n`` lines.

        Header names in the result are lower-cased.
        """
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{headers}Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        data = await self.reader.readexactly(int(fields["content-length"]))
        return int(lines[0].split(" ")[1]), fields, data

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: int) -> float:
    """The ``q``-th percentile (1-100; 100 is the maximum) of ``values``, in their unit."""
    if q >= 100:
        return max(values)
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def percentile_ms(seconds: list[float], q: int) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds."""
    return percentile(seconds, q) * 1000
