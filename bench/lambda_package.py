"""AWS Lambda package: cold start with and without the bytecode the build ships.

Takes an unpacked package (``.build/lambda`` after scripts/build-lambda-package.sh) and
times, in fresh interpreters run with ``-S`` (only the package importable, as on Lambda),
process start -> import of adapters/aws_lambda.py -> first ``GET /health/live`` answered:

* ``bytecode``: the package as built (``__pycache__`` for the runtime's Python);
* ``source``: a copy without ``__pycache__`` and ``PYTHONDONTWRITEBYTECODE=1`` — what
  a package compiled by another Python version costs on Lambda, whose /var/task is
  read-only (every module is compiled on every cold start).

With ``--boto3 DIR`` (a package built with ``BUNDLE_BOTO3=1``) it also times importing
boto3 and creating a DynamoDB client from that package against the interpreter's own
site-packages (where the Lambda runtime keeps its boto3), and prints both zip sizes.

    python bench/lambda_package.py .build/lambda [--boto3 DIR] [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A minimal API Gateway HTTP API (v2) event for GET /health/live.
EVENT = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/health/live",
    "rawQueryString": "",
    "headers": {"host": "example.com"},
    "requestContext": {
        "http": {"method": "GET", "path": "/health/live", "sourceIp": "203.0.113.1"},
        "requestId": "bench",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}

HEALTH = """
import json, sys
sys.path.insert(0, sys.argv[1] + "/adapters")
event = json.loads(sys.argv[2])
import aws_lambda
assert aws_lambda.handler(event, None)["statusCode"] == 200
"""

BOTO3 = """
import boto3
boto3.client("dynamodb", region_name="us-east-1")
"""


def timed(code: str, path: list[str], *args: str, site: bool = False) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AISERVICE_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # read-only /var/task: nothing is cached
    env["AISERVICE_LOGGING__ACCESS_LOG"] = "false"
    argv = [sys.executable, *([] if site else ["-S"]), "-c", code, *args]
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=120)
    return (time.perf_counter() - start) * 1000


def median(fn: object, runs: int) -> float:
    assert callable(fn)
    fn()  # untimed warm-up: page cache
    return statistics.median(fn() for _ in range(runs))


def without_bytecode(package: Path, tmp: Path) -> Path:
    copy = tmp / "source"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def zip_mb(folder: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        archive = shutil.make_archive(str(Path(tmp) / "p"), "zip", folder)
        return Path(archive).stat().st_size / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--boto3", type=Path, help="a package built with BUNDLE_BOTO3=1")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = without_bytecode(args.package, Path(tmp))
        result = {
            side: median(
                lambda p=path: timed(HEALTH, [str(p)], str(p), json.dumps(EVENT)), args.runs
            )
            for side, path in (("bytecode", args.package), ("source", source))
        }
    print(f"cold start, import + first /health/live (median of {args.runs}):")
    for side, ms in result.items():
        print(f"  {side:<9} {ms:8.1f} ms")
    print(f"  source/bytecode: {result['source'] / result['bytecode']:.2f}x")
    if args.boto3:
        bundled = median(lambda: timed(BOTO3, [str(args.boto3)]), args.runs)
        runtime = median(lambda: timed(BOTO3, [], site=True), args.runs)
        print("boto3 import + DynamoDB client:")
        print(f"  bundled in the package  {bundled:8.1f} ms")
        print(f"  runtime site-packages   {runtime:8.1f} ms")
        sizes = {"without boto3": zip_mb(args.package), "with boto3": zip_mb(args.boto3)}
        print("zip size: " + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes.items()))
    print(json.dumps({"cold_ms": result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
