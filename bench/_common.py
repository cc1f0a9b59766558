"""Helpers shared by the loopback benchmarks (run them as ``python bench/<name>.py``).

Ports, server processes, a minimal keep-alive HTTP/1.1 client (so the client costs little
next to the servers it measures) and percentiles. Only the standard library: the
benchmarks start their servers in child processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GATEWAY",
    "ROOT",
    "Connection",
    "WrkResult",
    "free_port",
    "gateway_config",
    "gateway_pair",
    "percentile",
    "percentile_ms",
    "servers",
    "wait_ready",
    "wrk",
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
        stop(procs)
        os.unlink(cfg.name)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every process, then wait for each (killing one that lingers)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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


@contextmanager
def servers(
    scripts: Mapping[str, tuple[str, Sequence[str]]], src: Mapping[str, Path] | None = None
) -> Iterator[dict[str, int]]:
    """Run each ``name: (script, extra args)`` as ``python -c script <port> *args`` (its own
    process, ``PYTHONPATH`` the tree's ``src`` or ``src[name]``); yields the ports once all
    listen and stops them afterwards. ``{name}`` in an argument is that server's port."""
    ports = {name: free_port() for name in scripts}
    procs = []
    try:
        for name, (script, args) in scripts.items():
            path = (src or {}).get(name, ROOT / "src")
            env = {**os.environ, "PYTHONPATH": str(path)}
            argv = [a.format(**ports) for a in args]
            cmd = [sys.executable, "-c", script, str(ports[name]), *argv]
            procs.append(subprocess.Popen(cmd, env=env))
        for proc, port in zip(procs, ports.values(), strict=True):
            wait_ready(port, proc)
        yield ports
    finally:
        stop(procs)


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(output: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if match is None:
        raise RuntimeError(f"no {label}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def wrk(
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    concurrency: int,
    seconds: float,
) -> WrkResult:
    """POST ``body`` with wrk (``--latency``) for ``seconds`` over ``concurrency``
    keep-alive connections; raises if any answer was not 2xx."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    threads = min(concurrency, 2)
    try:
        out = subprocess.run(
            [
                exe,
                f"-t{threads}",
                f"-c{concurrency}",
                f"-d{seconds:g}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against port {port}:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return WrkResult(
        float(rps.group(1)), _wrk_ms(out, "50"), _wrk_ms(out, "99"), int(total.group(1))
    )
