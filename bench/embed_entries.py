"""Embeddings cache entries: where encoding them on the CPU thread starts to pay.

Measures, in CPU time of this process (both threads), what one hop to the CPU worker
thread costs (``aiservice.cpu.run_cpu`` of an empty batch) and what encoding one float of
a vector into its cache entry costs inline; the crossover is their ratio: the batch size
(in floats) whose inline encoding blocks the event loop as long as the hop costs.
``OFFLOAD_FLOATS`` in ``aiservice/llm/cache/calls.py`` is set from it.

    python bench/embed_entries.py [--runs 3] [--hops 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from aiservice.cpu import run_cpu
from aiservice.llm.cache.calls import OFFLOAD_FLOATS, _entries


async def measure(hops: int) -> tuple[float, float]:
    await run_cpu(_entries, [])  # the worker thread exists before timing
    start = time.process_time()
    for _ in range(hops):
        await run_cpu(_entries, [])
    hop = (time.process_time() - start) / hops
    vectors = [[random.random() for _ in range(1536)] for _ in range(20)]
    rounds = 50
    start = time.process_time()
    for _ in range(rounds):
        _entries(vectors)
    per_float = (time.process_time() - start) / (rounds * 20 * 1536)
    return hop, per_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hops", type=int, default=2000)
    args = parser.parse_args()
    for _ in range(args.runs):
        hop, per_float = asyncio.run(measure(args.hops))
        print(
            f"hop {hop * 1e6:.1f} us CPU, encoding {per_float * 1e9:.0f} ns/float: "
            f"crossover {hop / per_float:.0f} floats (OFFLOAD_FLOATS = {OFFLOAD_FLOATS})"
        )


if __name__ == "__main__":
    main()
