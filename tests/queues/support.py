"""Real processes for queue tests: ``aiservice serve`` instances and a step-counting ML server.

:class:`StepServer` is the fleet of ML functions a flow calls: ``POST /fn/{step}`` with
``{"job": n}`` answers after ``delay`` seconds and records, per (job, step), when each
call started and when its answer was sent — what "no finished step repeated" is checked
against.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI, Request

from tests.platforms.procs import clean_env
from tests.reliability.service_process import Service, run_service
from tests.support.servers import serve_app

STEPS = ("one", "two", "three")


@dataclass
class StepCall:
    start: float
    end: float | None = None


@dataclass
class StepServer:
    delay: float
    calls: dict[tuple[int, str], list[StepCall]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/fn/{step}")
        async def function(step: str, request: Request) -> dict[str, Any]:
            job = int((await request.json())["job"])
            call = StepCall(time.monotonic())
            with self.lock:
                self.calls[(job, step)].append(call)
            await asyncio.sleep(self.delay)
            call.end = time.monotonic()
            return {"job": job, "step": step}

        return app

    def count(self, job: int, step: str) -> int:
        with self.lock:
            return len(self.calls[(job, step)])

    def repeated_finished(self, killed_at: float, persist_margin: float) -> list[str]:
        """(job, step) called again although an earlier call had answered (and had time to
        be stored) before the kill: a finished step repeated."""
        bad = []
        with self.lock:
            for (job, step), calls in self.calls.items():
                for earlier in calls[:-1]:
                    if earlier.end is not None and earlier.end < killed_at - persist_margin:
                        bad.append(f"job {job} step {step}: {len(calls)} calls")
        return bad


@contextmanager
def step_server(delay: float) -> Iterator[tuple[str, StepServer]]:
    server = StepServer(delay)
    with serve_app(server.app()) as url:
        yield url, server


def three_step_flow(base: str) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for i, name in enumerate(STEPS):
        steps[name] = {"url": f"{base}/fn/{name}", "body": {"job": "${input.job}"}}
        if i:
            steps[name]["depends_on"] = [STEPS[i - 1]]
    return {"steps": steps}


def write_config(workdir: Path, config: dict[str, Any], flows: dict[str, Any]) -> None:
    (workdir / "flows").mkdir(parents=True, exist_ok=True)
    for name, flow in flows.items():
        (workdir / "flows" / f"{name}.yaml").write_text(yaml.safe_dump(flow))
    (workdir / "aiservice.yaml").write_text(yaml.safe_dump({**config, "flows_dir": "flows"}))


@contextmanager
def instance(workdir: Path, port: int, name: str = "") -> Iterator[Service]:
    """``aiservice serve`` on ``port`` with the config in ``workdir``, yielded once ready."""
    log_path = workdir / f"service-{name or uuid.uuid4().hex[:6]}.log"
    environ = clean_env(PORT=str(port))
    with run_service(workdir, environ, log_path, ready_path="/health/ready", ready_within=40) as s:
        yield s


def wait_all_finished(url: str, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll ``GET /executions/{id}`` until every execution finished (or the timeout)."""
    deadline = time.monotonic() + timeout
    docs: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=5) as client:
        while True:
            for execution_id in ids:
                if docs.get(execution_id, {}).get("status") in ("succeeded", "failed"):
                    continue
                docs[execution_id] = client.get(f"/executions/{execution_id}").json()
            done = all(d.get("status") in ("succeeded", "failed") for d in docs.values())
            if done or time.monotonic() > deadline:
                return docs
            time.sleep(0.2)
