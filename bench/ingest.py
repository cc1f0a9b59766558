"""Vector import throughput (local only, ~1 min): ``python bench/ingest.py [--records N]``.

N JSONL records (default 10,000) with precomputed 64-dimensional vectors are imported
into an embedded Qdrant on disk (a fresh temporary directory each time) twice, each in a
process of its own:

1. baseline: a plain migration script with qdrant-client (``AsyncQdrantClient(path=...)``,
   ``upsert`` of 256 points per call, one call at a time, the library's storage defaults);
2. ``aiservice ingest`` (batches of 256, concurrency 4, a checkpoint after every batch,
   deterministic ids, progress off).

Prints records/s of both (process start included) and the ratio ingest / baseline.
Target: ratio >= 1 — the checkpointing, retries and resumability cost nothing visible,
since the import tunes embedded Qdrant's SQLite files (WAL, see aiservice.vectors.qdrant).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIM = 64

BASELINE = r"""
import asyncio, json, sys, uuid
from qdrant_client import AsyncQdrantClient, models

async def main(source, path):
    client = AsyncQdrantClient(path=path)
    await client.create_collection(
        "baseline", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    batch = []
    with open(source) as lines:
        for line in lines:
            r = json.loads(line)
            pid = str(uuid.uuid5(uuid.NAMESPACE_URL, str(r["id"])))
            batch.append(models.PointStruct(id=pid, vector=r["vector"], payload=r["metadata"]))
            if len(batch) == 256:
                await client.upsert("baseline", batch)
                batch = []
    if batch:
        await client.upsert("baseline", batch)
    print((await client.count("baseline")).count)
    await client.close()

DIM = int(sys.argv[3])
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _records(path: Path, n: int) -> None:
    rng = random.Random(1)
    with path.open("w") as out:
        for i in range(n):
            vector = [round(rng.uniform(-1, 1), 5) for _ in range(DIM)]
            out.write(json.dumps({"id": i, "vector": vector, "metadata": {"n": i}}) + "\n")


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=10_000)
    n = parser.parse_args().records
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "records.jsonl"
        _records(source, n)
        base_s, out = _timed(
            [sys.executable, "-c", BASELINE, str(source), str(root / "b"), str(DIM)], env
        )
        assert int(out.strip()) == n, out
        config = root / "aiservice.yaml"
        config.write_text(
            json.dumps({"vectors": {"backend": "qdrant", "location": str(root / "a")}})
        )
        argv = [sys.executable, "-m", "aiservice", "ingest", str(source), "--store", "vs_bench"]
        ingest_s, out = _timed([*argv, "-c", str(config), "--quiet"], env)
        assert f"{n}/{n}" in out, out
    base_rate, ingest_rate = n / base_s, n / ingest_s
    print(f"records: {n} x {DIM} dimensions, embedded Qdrant on disk")
    print(f"baseline qdrant-client upsert: {base_s:7.2f} s  {base_rate:8,.0f} records/s")
    print(f"aiservice ingest:              {ingest_s:7.2f} s  {ingest_rate:8,.0f} records/s")
    print(f"ratio ingest / baseline: {ingest_rate / base_rate:.2f} (target >= 1)")


if __name__ == "__main__":
    main()
