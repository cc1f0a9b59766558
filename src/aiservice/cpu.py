"""CPU-bound work off the event loop, on one worker thread for the whole process.

The event loop must keep answering (health probes, other requests, streams) while a
request computes something big (fake embeddings, encoding millions of floats). A worker
thread does that work; the loop thread then only competes with it for the GIL, which
CPython hands over every few milliseconds as long as the work is a Python loop over
small steps (one vector at a time, say) rather than one long C call.

One thread, not a pool: CPU-bound Python threads do not run in parallel under the GIL,
so more of them would not finish sooner, they would only make the loop thread wait its
turn behind each of them. No thread exists until the first call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["run_cpu"]

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aiservice-cpu")
        return _executor


async def run_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the CPU worker thread (context variables carried)."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_worker(), call)
