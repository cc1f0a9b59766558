"""CloudWatch EMF on Lambda: warm invocation throughput with the EMF sink off and on.

adapters/aws_lambda.py answers API Gateway v2 ``POST /v1/chat/completions`` events (fake
model, priced, cache off so every invocation records LLM, token and cost metrics) in a loop
for a fixed time, once with ``metrics.sink: none`` and once with ``emf``; runs alternate
and the medians are compared. Rates are per CPU second of the child (wall-clock rates
are printed too): on a shared machine the wall clock mostly measures the neighbours.
The child's stdout (the EMF lines) goes to a file: a pipe
read by this process would measure how fast the parent gets the CPU back on a busy machine,
not what the function pays (on Lambda another process drains stdout).
The flush is also timed inside the child (CPU time per invocation and its share), which
is steadier than the ratio of two throughputs when neighbours come and go.
Target: EMF costs a few percent at most (ratio on/off >= 0.95).

    python bench/emf.py [--runs 7] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "platforms" / "events" / "aws" / "apiGatewayProxyV2Event.json"

CONFIG = {
    "pricing": {"fake": {"input": 1.0, "output": 2.0}},
    "cache": {"mode": "off"},
    "logging": {"access_log": False, "level": "WARNING"},
}

CHILD = """
import json, sys, time
seconds = float(sys.argv[1])
sys.path.insert(0, sys.argv[2])
event = json.loads(open(sys.argv[3]).read())
event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/chat/completions"
event["requestContext"]["http"]["method"] = "POST"
event["headers"] = {"content-type": "application/json"}
event["body"] = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
event["isBase64Encoded"] = False
from aws_lambda import handler
spent = [0.0]
sink = handler.metrics
if sink is not None:  # time the flush itself: the throughput ratio is noisy on shared CPUs
    flush = sink.flush
    def timed_flush():
        c = time.process_time()
        flush()
        spent[0] += time.process_time() - c
    sink.flush = timed_flush
for _ in range(200):  # warm: lifespan started, children of every metric created
    assert handler(event, None)["statusCode"] == 200
calls = 0
spent[0] = 0.0
t0, c0 = time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < seconds:
    for _ in range(50):
        handler(event, None)
    calls += 50
cpu = time.process_time() - c0
print(json.dumps({"rate": calls / (time.perf_counter() - t0), "cpu_rate": calls / cpu,
                  "flush_share": spent[0] / cpu, "flush_us": spent[0] / calls * 1e6}),
      file=sys.stderr)
"""


def run_child(sink: str, seconds: float, workdir: Path) -> tuple[dict[str, float], int]:
    """({"rate", "cpu_rate"} invocations per second, EMF lines written) for one process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["AISERVICE_CONFIG"] = str(workdir / "aiservice.json")
    env["AISERVICE_METRICS__SINK"] = sink
    log = workdir / f"stdout-{sink}.log"
    with log.open("w") as stdout:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(seconds), str(ROOT / "adapters"), str(EVENT)],
            cwd=workdir,
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=True,
        )
    with log.open() as written:
        emf_lines = sum(1 for line in written if line.startswith('{"_aws"'))
    rates: dict[str, float] = json.loads(out.stderr.strip().splitlines()[-1])
    return rates, emf_lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    sides = ("none", "emf")
    rates: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    lines: dict[str, int] = {s: 0 for s in sides}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "aiservice.json").write_text(json.dumps(CONFIG))
        for i in range(args.runs):
            for side in sides if i % 2 == 0 else sides[::-1]:
                rate, emitted = run_child(side, args.seconds, workdir)
                rates[side].append(rate)
                lines[side] += emitted
    cpu = {s: statistics.median(r["cpu_rate"] for r in rates[s]) for s in sides}
    wall = {s: statistics.median(r["rate"] for r in rates[s]) for s in sides}
    print(f"warm chat-completion invocations (median of {args.runs}, {args.seconds:g} s each):")
    for s in sides:
        print(
            f"  metrics.sink={s:<5} {cpu[s]:8.0f} /CPU-s {wall[s]:8.0f} /s wall"
            f"   EMF lines written: {lines[s]}"
        )
    ratio = cpu["emf"] / cpu["none"]
    flush_us = statistics.median(r["flush_us"] for r in rates["emf"])
    share = statistics.median(r["flush_share"] for r in rates["emf"])
    print(f"  ratio emf/none: {ratio:.3f}x per CPU second (target >= 0.95x)")
    print(f"  the flush itself: {flush_us:.0f} us per invocation, {share:.1%} of the CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
