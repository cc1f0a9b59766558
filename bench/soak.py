"""Soak (loopback only, bounded): ``python bench/soak.py [--client auto|wrk|raw]``.

Starts ``aiservice serve --workers 2`` on a free loopback port with the default
configuration (the ``fake`` model, in-memory cache, access log on, written to a temporary
file) and sends 20,000 requests at concurrency 64 in three phases (1,000 / 9,000 / 10,000),
a mix of chat completions (half ``temperature: 0`` over 100 prompts, so cache hits; half
uncached), embeddings, the model list and readiness. Each phase stops at its request count
or after ``PHASE_SECONDS``, whichever comes first.

The client is ``wrk`` with a Lua script (request mix, count-bounded phases) when installed,
else a minimal keep-alive HTTP/1.1 client (``bench/_common.py``). After each phase the
resident memory of both worker processes is read from ``/proc``.

Targets (exit status 1 if one fails):
* errors: 0 (transport errors and non-2xx answers), every phase completed;
* memory: worker RSS growth from 1k to 10k requests <= 10 % (sum over workers);
* server log: no ERROR line.
Reported: requests/s and p50/p99 latency per phase, RSS per worker after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT, Connection, free_port, percentile_ms

WORKERS = 2
CONCURRENCY = 64
PHASES = (1_000, 9_000, 10_000)  # RSS after 1k is the baseline, after 10k the check
PHASE_SECONDS = 120.0
MAX_RSS_GROWTH = 0.10
PROMPTS = 100

LUA = r"""
-- Request mix and a per-thread request budget. A thread that used its budget stops and
-- says so on stderr (the runner then interrupts wrk, which prints its summary at once);
-- done() prints one JSON line.
local requests, budget, seen, n = {}, tonumber(os.getenv("SOAK_PER_THREAD")), 0, 0
local json = {["Content-Type"] = "application/json"}
local function chat(text, cached)
  local body = '{"model":"fake","messages":[{"role":"user","content":"' .. text .. '"}]'
  if cached then body = body .. ',"temperature":0' end
  return wrk.format("POST", "/v1/chat/completions", json, body .. "}")
end
for i = 0, 99 do
  table.insert(requests, chat("prompt " .. i, true))
  table.insert(requests, chat("fresh question " .. i, false))
  table.insert(requests, wrk.format("POST", "/v1/embeddings", json,
    '{"model":"fake","input":["text ' .. i .. '","other"],"dimensions":64}'))
  if i % 2 == 0 then table.insert(requests, wrk.format("GET", "/v1/models")) end
  if i % 2 == 1 then table.insert(requests, wrk.format("GET", "/health/ready")) end
end
function init(args) n = math.random(#requests) end
function request()
  n = n % #requests + 1
  return requests[n]
end
function response(status, headers, body)
  seen = seen + 1
  if seen == budget then
    io.stderr:write("soak-thread-done\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%f,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_ms":%f,"p99_ms":%f,"max_ms":%f}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


@dataclass
class Phase:
    wanted: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_kib: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def complete(self) -> bool:
        return self.requests >= self.wanted


# -- the service ---------------------------------------------------------------------------


@contextmanager
def service(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """``aiservice serve --workers 2`` with the default configuration, output to a file."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    log_path = workdir / "service.log"
    argv = [sys.executable, "-m", "aiservice", "serve", "--workers", str(WORKERS)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=log
        )
    try:
        wait_workers(port, proc)
        yield port, proc, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_workers(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until every worker process exists and the port answers /health/live."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"aiservice exited with {proc.returncode}")
        if len(worker_pids(proc.pid)) == WORKERS and asyncio.run(_live(port)):
            return
        time.sleep(0.2)
    raise RuntimeError("aiservice did not start its workers")


async def _live(port: int) -> bool:
    try:
        conn = await Connection.open(port)
    except OSError:
        return False
    try:
        status, _, _ = await conn.send("GET", "/health/live")
        return status == 200
    finally:
        conn.close()


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under ``parent``, from /proc (multiprocessing's resource
    tracker is a child too, but not a worker)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        # The fields after the command name (in parentheses, may hold spaces): state, ppid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return sorted(pids)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


# -- clients -------------------------------------------------------------------------------


def run_wrk(port: int, phase: Phase, script: Path) -> None:
    threads = 2
    env = {**os.environ, "SOAK_PER_THREAD": str(-(-phase.wanted // threads))}
    argv = ["wrk", "-t", str(threads), "-c", str(CONCURRENCY), "-d", f"{PHASE_SECONDS:.0f}s"]
    argv += ["--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None and proc.stdout is not None
    # wrk runs for its whole -d even when every thread stopped; SIGINT ends the wait and
    # it prints the summary of what ran.
    finished = 0
    for line in proc.stderr:
        finished += line.strip() == b"soak-thread-done"
        if finished == threads:
            proc.send_signal(signal.SIGINT)
            break
    out = proc.stdout.read().decode()
    proc.wait(timeout=30)
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    phase.requests, phase.errors, phase.seconds = result["requests"], errors, result["seconds"]
    phase.p50_ms, phase.p99_ms, phase.max_ms = result["p50_ms"], result["p99_ms"], result["max_ms"]


def request_mix() -> list[tuple[str, str, bytes]]:
    """The same mix as the wrk script."""
    mix: list[tuple[str, str, bytes]] = []
    for i in range(PROMPTS):
        for text, cached in ((f"prompt {i}", True), (f"fresh question {i}", False)):
            body: dict[str, object] = {
                "model": "fake",
                "messages": [{"role": "user", "content": text}],
            }
            if cached:
                body["temperature"] = 0
            mix.append(("POST", "/v1/chat/completions", json.dumps(body).encode()))
        embed = {"model": "fake", "input": [f"text {i}", "other"], "dimensions": 64}
        mix.append(("POST", "/v1/embeddings", json.dumps(embed).encode()))
        mix.append(("GET", "/v1/models" if i % 2 == 0 else "/health/ready", b""))
    return mix


async def run_raw(port: int, phase: Phase) -> None:
    mix = request_mix()
    latencies: list[float] = []
    state = {"next": 0, "errors": 0}
    deadline = time.monotonic() + PHASE_SECONDS

    async def worker(offset: int) -> None:
        conn = await Connection.open(port)
        try:
            while state["next"] < phase.wanted and time.monotonic() < deadline:
                state["next"] += 1
                method, path, body = mix[(state["next"] + offset) % len(mix)]
                started = time.perf_counter()
                try:
                    status, _, _ = await conn.send(method, path, body)
                except (OSError, asyncio.IncompleteReadError):
                    state["errors"] += 1
                    conn.close()
                    conn = await Connection.open(port)
                    continue
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    state["errors"] += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n * 7) for n in range(CONCURRENCY)))
    phase.seconds = time.perf_counter() - started
    phase.requests, phase.errors = len(latencies), state["errors"]
    phase.p50_ms, phase.p99_ms = percentile_ms(latencies, 50), percentile_ms(latencies, 99)
    phase.max_ms = percentile_ms(latencies, 100)


# -- the run -------------------------------------------------------------------------------


def soak(client: str) -> list[Phase]:
    phases = [Phase(n) for n in PHASES]
    with tempfile.TemporaryDirectory(prefix="aiservice-soak-") as tmp:
        workdir = Path(tmp)
        script = workdir / "soak.lua"
        script.write_text(LUA)
        with service(workdir) as (port, proc, log_path):
            workers = worker_pids(proc.pid)
            for number, phase in enumerate(phases, 1):
                if client == "wrk":
                    run_wrk(port, phase, script)
                else:
                    asyncio.run(run_raw(port, phase))
                phase.rss_kib = {pid: rss_kib(pid) for pid in workers}
                print(f"phase {number}: {describe(phase)}", flush=True)
            errors_logged = count_error_lines(log_path)
    return report(phases, errors_logged, client)


def count_error_lines(log_path: Path) -> int:
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if '"severity": "ERROR"' in line or "Traceback" in line:
            count += 1
    return count


def describe(phase: Phase) -> str:
    rss = ", ".join(f"{kib / 1024:.1f}" for kib in phase.rss_kib.values())
    return (
        f"{phase.requests}/{phase.wanted} requests in {phase.seconds:.1f} s, "
        f"{phase.errors} errors, {phase.rps:.0f} req/s, p50 {phase.p50_ms:.1f} ms, "
        f"p99 {phase.p99_ms:.1f} ms, max {phase.max_ms:.1f} ms, worker RSS MiB: {rss}"
    )


def report(phases: list[Phase], errors_logged: int, client: str) -> list[Phase]:
    total = sum(p.requests for p in phases)
    seconds = sum(p.seconds for p in phases)
    errors = sum(p.errors for p in phases)
    base, check = sum(phases[0].rss_kib.values()), sum(phases[1].rss_kib.values())
    growth = (check - base) / base
    late = sum(phases[2].rss_kib.values())
    print(
        f"\nsoak: {total} requests ({client} client, concurrency {CONCURRENCY}, "
        f"{WORKERS} workers) in {seconds:.1f} s = {total / seconds:.0f} req/s"
    )
    targets = [
        ("errors", errors == 0 and all(p.complete for p in phases), f"{errors} errors"),
        (
            "memory",
            growth <= MAX_RSS_GROWTH,
            f"worker RSS {base / 1024:.1f} MiB after 1k, {check / 1024:.1f} MiB after 10k "
            f"({growth:+.1%}, limit +{MAX_RSS_GROWTH:.0%}); {late / 1024:.1f} MiB after 20k",
        ),
        ("server log", errors_logged == 0, f"{errors_logged} ERROR lines"),
    ]
    for name, ok, detail in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if not all(ok for _, ok, _ in targets):
        raise SystemExit(1)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("auto", "wrk", "raw"), default="auto")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "raw"
    soak(client)


if __name__ == "__main__":
    main()
