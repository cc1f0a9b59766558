"""Lambda SnapStart: what a restored environment still pays, against a cold start.

(a) Cold start (as bench/lambda.py): a fresh interpreter imports adapters/aws_lambda.py and
    answers one API Gateway v2 ``GET /health/live`` event, startup included.
(b) After restore: in a process that imported the adapter and ran the before-snapshot hook
    (a ``snap-start`` init with the stand-in ``snapshot_restore_py`` from
    tests/support/snapstart_runtime), the after-restore hook (re-seed, secrets, shutdown +
    startup) and the same first event, timed.

The restore itself (Lambda resuming the memory snapshot) cannot run here and is not in (b):
this measures the Python work SnapStart removes and the work the hooks add back.

    python bench/snapstart.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "tests" / "platforms" / "events" / "aws" / "apiGatewayProxyV2Event.json"
STAND_IN = ROOT / "tests" / "support" / "snapstart_runtime"

CHILD = """
import json, sys, time
start = float(sys.argv[1]); mode = sys.argv[2]
sys.path.insert(0, sys.argv[3])
event = json.loads(open(sys.argv[4]).read())
event["rawPath"] = event["requestContext"]["http"]["path"] = "/health/live"
event["requestContext"]["http"]["method"] = "GET"
event["body"] = None
import aws_lambda
if mode == "restore":
    import snapshot_restore_py as hooks
    hooks.run_before_snapshot()
    start = time.time()  # the snapshot: everything above is in it
    hooks.run_after_restore()
first = aws_lambda.handler(event, None)
assert first["statusCode"] == 200, first
print(json.dumps({"elapsed": time.time() - start}))
"""


def run_child(mode: str, workdir: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(STAND_IN), str(ROOT / "src")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["AISERVICE_LOGGING__ACCESS_LOG"] = "false"
    if mode == "restore":
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(start), mode, str(ROOT / "adapters"), str(EVENT)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    elapsed: float = json.loads(out.stdout.strip().splitlines()[-1])["elapsed"]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    modes = ("cold", "restore")
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for mode in modes:  # untimed warm-up: page cache, .pyc files
            run_child(mode, workdir)
        for i in range(args.runs):
            for mode in modes if i % 2 == 0 else modes[::-1]:
                times[mode].append(run_child(mode, workdir))
    med = {m: statistics.median(times[m]) * 1000 for m in modes}
    print(f"median of {args.runs}, until the first GET /health/live is answered:")
    print(f"  cold start (process start)        {med['cold']:8.1f} ms")
    print(f"  after restore (hook + first call) {med['restore']:8.1f} ms")
    print(f"  ratio restore/cold: {med['restore'] / med['cold']:.3f}x (plus the restore itself)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
