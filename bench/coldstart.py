"""Cold start: aiservice against a minimal FastAPI app, each in a fresh interpreter.

Each run is a new ``python -c`` process that imports its app, runs the lifespan and answers
``GET /health/live`` in-process through ``httpx.ASGITransport`` — the same client code on
both sides, so the difference is what aiservice imports and builds at startup. Runs are
interleaved (alternating which side goes first) after one untimed warm-up each, and the
medians are compared. Target: aiservice <= 1.25x the minimal app.

    python bench/coldstart.py [--runs 7] [--phases] [--importtime] [--max-ratio 1.25]
    python bench/coldstart.py --callgrind

``--callgrind`` counts the CPU instructions of one run per side under ``valgrind
--tool=callgrind`` instead (user space: the neighbours' load on a shared machine moves
wall and CPU time, not instructions), after one plain run has compiled the bytecode.

To show where a regression comes from, ``--phases`` times aiservice's startup phases
(imports, create_app, lifespan, request) in-process, and ``--importtime`` lists the modules
aiservice imports that the minimal app does not, by ``python -X importtime`` self time.
Exit status: 0, or 1 with ``--max-ratio`` when the ratio is above it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
TARGET = 1.25

# Both sides share this tail: lifespan + one in-process request through the same client.
_REQUEST = """
import asyncio
import httpx

async def main():
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            response = await client.get("/health/live")
    assert response.status_code == 200, response.text

asyncio.run(main())
"""

# A typed FastAPI route, as most apps declare theirs: FastAPI imports pydantic.v1 (~25 ms)
# when it builds a route with a response model or parameters. aiservice's probe route
# declares its response schema instead, so its cold start does not pay that import (its
# first request to another route does); against an untyped minimal app the ratio is about
# 0.06 higher (docs/benchmarks.md, "Cold start in detail").
MINIMAL = (
    """
from fastapi import FastAPI

app = FastAPI()

@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
"""
    + _REQUEST
)

# Embedded defaults, as a fresh deployment would run: settings from files and environment
# (none here), JSON logging configured.
AISERVICE = (
    """
from aiservice import create_app

app = create_app()
"""
    + _REQUEST
)

SIDES = {"minimal": MINIMAL, "aiservice": AISERVICE}

# The aiservice side with timestamps between its phases (for --phases).
PHASES = """
import time
marks = [("start", time.perf_counter())]
import asyncio, json, httpx
from fastapi import FastAPI
marks.append(("import httpx+fastapi", time.perf_counter()))
import aiservice
marks.append(("import aiservice", time.perf_counter()))
app = aiservice.create_app()
marks.append(("create_app", time.perf_counter()))

async def run():
    async with app.router.lifespan_context(app):
        marks.append(("lifespan startup", time.perf_counter()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            response = await client.get("/health/live")
        marks.append(("GET /health/live", time.perf_counter()))
    marks.append(("lifespan shutdown", time.perf_counter()))
    assert response.status_code == 200

asyncio.run(run())
steps = {name: (t - marks[i][1]) * 1000 for i, (name, t) in enumerate(marks[1:])}
print("PHASES " + json.dumps(steps))
"""


_PYCACHE = tempfile.mkdtemp(prefix="aiservice-bench-pyc-")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    # Deployed code runs from bytecode (wheels and images ship .pyc); a machine that sets
    # PYTHONDONTWRITEBYTECODE would make only the source checkout recompile on every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


_cpu_of_last_run = [0.0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(code: str, cwd: str, *flags: str) -> tuple[float, str, str]:
    """Wall time of one fresh interpreter running ``code``, with its stdout and stderr.

    Its CPU time (user + system, which moves far less than wall time with the load of a
    shared machine) is left in ``_cpu_of_last_run``.
    """
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    _cpu_of_last_run[0] = _children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stderr}")
    return elapsed, result.stdout, result.stderr


def callgrind_instructions(name: str, cwd: str) -> int:
    """CPU instructions of one run of side ``name`` (valgrind's callgrind)."""
    run_once(SIDES[name], cwd)  # bytecode compiled and cached, as deployed
    out = Path(cwd) / f"callgrind.{name}.out"
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        + [sys.executable, "-c", SIDES[name]],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed under callgrind:\n{result.stderr}")
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {out}")


def report_callgrind(cwd: str) -> float:
    counts = {name: callgrind_instructions(name, cwd) for name in SIDES}
    print("cold start instructions (callgrind: import, lifespan, GET /health/live):")
    for name, count in counts.items():
        print(f"  {name:<10} {count / 1e6:10,.0f} M")
    ratio = counts["aiservice"] / counts["minimal"]
    verdict = "meets" if ratio <= TARGET else "misses"
    print(f"ratio aiservice/minimal: {ratio:.2f}x ({verdict} the <= {TARGET}x target)")
    return ratio


def measure(runs: int, cwd: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each side's runs."""
    times: dict[str, list[float]] = {name: [] for name in SIDES}
    cpu: dict[str, list[float]] = {name: [] for name in SIDES}
    for code in SIDES.values():
        run_once(code, cwd)  # warm the OS file cache and the bytecode caches
    for i in range(runs):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for name in order:
            times[name].append(run_once(SIDES[name], cwd)[0])
            cpu[name].append(_cpu_of_last_run[0])
    return times, cpu


def _import_times(stderr: str) -> dict[str, int]:
    """``module -> self time in µs`` from ``-X importtime`` output."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|", 2)
        out[name.strip()] = int(self_us)
    return out


def report_extra_imports(cwd: str, top: int = 25) -> None:
    base = _import_times(run_once(MINIMAL, cwd, "-X", "importtime")[2])
    ours = _import_times(run_once(AISERVICE, cwd, "-X", "importtime")[2])
    extra = {name: us for name, us in ours.items() if name not in base}
    by_package: dict[str, int] = defaultdict(int)
    for name, us in extra.items():
        # aiservice's own subpackages are listed separately: they are what to defer.
        depth = 2 if name.startswith("aiservice.") else 1
        by_package[".".join(name.split(".")[:depth])] += us
    total = sum(extra.values())
    print(f"\nmodules imported by aiservice only: {len(extra)}, {total / 1000:.1f} ms self time")
    print("by package (ms):")
    for package, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:8.1f}  {package}")
    print(f"slowest {top} modules (ms, self):")
    for name, us in sorted(extra.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:8.1f}  {name}")


def report_phases(runs: int, cwd: str) -> None:
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        stdout = run_once(PHASES, cwd)[1]
        line = next(x for x in stdout.splitlines() if x.startswith("PHASES "))
        for name, ms in json.loads(line.removeprefix("PHASES ")).items():
            samples[name].append(ms)
    print(f"\naiservice phases in-process (median of {runs}, ms):")
    for name, values in samples.items():
        print(f"  {statistics.median(values):8.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side (>= 5)")
    parser.add_argument("--phases", action="store_true", help="time aiservice's startup phases")
    parser.add_argument("--importtime", action="store_true", help="list extra imports")
    parser.add_argument("--max-ratio", type=float, help="exit 1 when the ratio is above this")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions (valgrind) instead"
    )
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    # An empty working directory: no aiservice.yaml or .env is picked up.
    with tempfile.TemporaryDirectory(prefix="aiservice-coldstart-") as cwd:
        if args.callgrind:
            ratio = report_callgrind(cwd)
            return 1 if args.max_ratio is not None and ratio > args.max_ratio else 0
        times, cpu = measure(args.runs, cwd)
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"cold start, {args.runs} interleaved runs each (python {sys.version.split()[0]})")
        for name, values in times.items():
            spread = f"min {min(values) * 1000:.0f} / max {max(values) * 1000:.0f}"
            print(f"  {name:<10} median {medians[name] * 1000:7.1f} ms  ({spread} ms)")
        ratio = medians["aiservice"] / medians["minimal"]
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"ratio aiservice/minimal: {ratio:.2f}x ({verdict} the <= {TARGET}x target)")
        cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
        print(
            "CPU time (user + system), medians: "
            + ", ".join(f"{name} {ms * 1000:.0f} ms" for name, ms in cpu_medians.items())
            + f"; ratio {cpu_medians['aiservice'] / cpu_medians['minimal']:.2f}x"
        )
        if args.phases:
            report_phases(args.runs, cwd)
        if args.importtime:
            report_extra_imports(cwd)
    return 1 if args.max_ratio is not None and ratio > args.max_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
