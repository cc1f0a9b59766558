"""AWS Lambda: adapters/aws_lambda.py against a minimal FastAPI + Mangum app.

(a) Cold start: a fresh interpreter imports the handler module and answers one API Gateway
    v2 ``GET /health/live`` event (lifespan included); timed from process start to the
    response, runs interleaved, medians compared. Target: aiservice <= 1.25x the minimal app.
    With ``--first chat`` the first event is instead a ``POST /v1/chat/completions`` (the
    ``fake`` model; the minimal app answers a fixed completion from a plain JSON route), as
    when an environment is started by real traffic: what aiservice builds on first need
    (its API routers, the gateway's first call) is then inside the measure.
(b) Warm: invocations per second through ``handler`` for a fixed time in one process.
    Target: aiservice >= 0.7x the minimal app.
Both report the peak RSS of the process (ru_maxrss).

``--callgrind`` instead counts the CPU instructions of one cold start per side under
``valgrind --tool=callgrind`` (user space; the neighbours' load does not move them, which
wall and CPU time on a shared machine do), bytecode warmed by one plain run first.

    python bench/lambda.py [--runs 7] [--seconds 2] [--first live|chat] [--callgrind]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "platforms" / "events" / "aws" / "apiGatewayProxyV2Event.json"

BASELINE = """
from fastapi import FastAPI, Request
from mangum import Mangum

app = FastAPI()


@app.get("/health/live")
async def live():
    return {"status": "ok"}


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    text = body["messages"][-1]["content"]
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


handler = Mangum(app)
"""

# The child: the clock starts at interpreter start (time of process creation is passed in).
CHILD = """
import json, resource, sys, time
start = float(sys.argv[1]); mode = sys.argv[2]; seconds = float(sys.argv[3])
sys.path.insert(0, sys.argv[4])
event = json.loads(open(sys.argv[5]).read())
event["isBase64Encoded"] = False
if sys.argv[7] == "chat":
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/chat/completions"
    event["requestContext"]["http"]["method"] = "POST"
    event["headers"]["content-type"] = "application/json"
    event["body"] = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
else:
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/health/live"
    event["requestContext"]["http"]["method"] = "GET"
    event["body"] = None
import importlib
handler = importlib.import_module(sys.argv[6]).handler
first = handler(event, None)
assert first["statusCode"] == 200, first
cold = time.time() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
calls = 0
if mode == "warm":
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            handler(event, None)
        calls += 50
    rate = calls / (time.perf_counter() - t0)
else:
    rate = 0.0
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"cold": cold, "cpu": cpu, "rate": rate, "rss_mb": rss_kb / 1024}))
"""


def run_child(
    side: str,
    mode: str,
    seconds: float,
    workdir: Path,
    first: str = "live",
    wrapper: tuple[str, ...] = (),
) -> dict[str, float]:
    import time

    module_dir = str(ROOT / "adapters") if side == "aiservice" else str(workdir)
    module = "aws_lambda" if side == "aiservice" else "baseline_app"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    # Bytecode as an installed wheel has it (pip compiles on install): cached in a private
    # prefix by the untimed warm-up run, so the source tree stays clean.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["AISERVICE_LOGGING__ACCESS_LOG"] = "false"  # Mangum's baseline logs nothing either
    start = time.time()
    out = subprocess.run(
        [
            *wrapper,
            sys.executable,
            "-c",
            CHILD,
            repr(start),
            mode,
            str(seconds),
            module_dir,
            str(EVENT),
            module,
            first,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def callgrind_instructions(side: str, workdir: Path, first: str) -> int:
    """CPU instructions of one cold start of ``side`` (import, first invocation)."""
    out = workdir / f"callgrind.{side}.out"
    wrapper = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
    run_child(side, "cold", 0, workdir, first, wrapper)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {out}")


def report_callgrind(workdir: Path, first: str) -> None:
    sides = ("aiservice", "baseline")
    for side in sides:  # bytecode as deployed: compiled by a plain run first
        run_child(side, "cold", 0, workdir, first)
    counts = {side: callgrind_instructions(side, workdir, first) for side in sides}
    request = "GET /health/live" if first == "live" else "POST /v1/chat/completions"
    print(f"cold start instructions (callgrind: import handler, first {request}):")
    for side in sides:
        print(f"  {side:<10} {counts[side] / 1e6:10,.0f} M")
    ratio = counts["aiservice"] / counts["baseline"]
    print(f"  ratio aiservice/baseline: {ratio:.2f}x (target <= 1.25x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--first", choices=("live", "chat"), default="live")
    parser.add_argument(
        "--callgrind", action="store_true", help="count cold start instructions (valgrind)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "baseline_app.py").write_text(textwrap.dedent(BASELINE))
        if args.callgrind:
            report_callgrind(workdir, args.first)
            return 0
        sides = ("aiservice", "baseline")
        for side in sides:  # untimed warm-up: page cache, .pyc files
            run_child(side, "cold", 0, workdir, args.first)
        cold: dict[str, list[float]] = {s: [] for s in sides}
        cpu: dict[str, list[float]] = {s: [] for s in sides}
        rss: dict[str, list[float]] = {s: [] for s in sides}
        for i in range(args.runs):
            for side in sides if i % 2 == 0 else sides[::-1]:
                result = run_child(side, "cold", 0, workdir, args.first)
                cold[side].append(result["cold"])
                cpu[side].append(result["cpu"])
                rss[side].append(result["rss_mb"])
        warm = {s: run_child(s, "warm", args.seconds, workdir, args.first) for s in sides}
    med = {s: statistics.median(cold[s]) * 1000 for s in sides}
    first = "GET /health/live" if args.first == "live" else "POST /v1/chat/completions"
    print(f"cold start (median of {args.runs}, process start -> first response to {first}):")
    for s in sides:
        print(f"  {s:<10} {med[s]:8.1f} ms   peak RSS {max(rss[s]):6.1f} MB")
    cold_ratio = med["aiservice"] / med["baseline"]
    print(f"  ratio aiservice/baseline: {cold_ratio:.2f}x (target <= 1.25x)")
    # CPU time to the first response moves less with the neighbours' load than wall time.
    cpu_med = {s: statistics.median(cpu[s]) * 1000 for s in sides}
    print(
        f"  CPU (user + system) to the first response: aiservice {cpu_med['aiservice']:.0f} ms,"
        f" baseline {cpu_med['baseline']:.0f} ms:"
        f" {cpu_med['aiservice'] / cpu_med['baseline']:.2f}x"
    )
    print(f"warm invocations/s ({args.seconds:g} s each):")
    for s in sides:
        print(f"  {s:<10} {warm[s]['rate']:8.0f} /s   peak RSS {warm[s]['rss_mb']:6.1f} MB")
    warm_ratio = warm["aiservice"]["rate"] / warm["baseline"]["rate"]
    print(f"  ratio aiservice/baseline: {warm_ratio:.2f}x (target >= 0.7x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
