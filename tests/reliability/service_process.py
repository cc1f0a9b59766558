"""``aiservice serve`` as a real process on loopback, its output captured to a file.

The output goes to a file, not a pipe: at DEBUG, or under steady traffic with the access
log on, the service writes faster than a test reads, and a full pipe would block its
event loop on a log write (a hang the test would wrongly blame on the service).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.platforms.procs import port_env


@dataclass
class Service:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs (a crashed instance)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def serve_process(
    workdir: Path, config: dict[str, Any], *, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """Write ``config`` as ``aiservice.yaml`` in ``workdir``, serve it, yield once it answers.

    Stops the process with SIGTERM (SIGKILL after 15 s) on exit; the output stays readable.
    """
    (workdir / "aiservice.yaml").write_text(yaml.safe_dump(config))
    with run_service(workdir, port_env(**(env or {})), workdir / "service.log") as service:
        yield service


@contextmanager
def run_service(
    workdir: Path,
    environ: dict[str, str],
    log_path: Path,
    *,
    ready_path: str = "/health/live",
    ready_within: float = 30.0,
) -> Iterator[Service]:
    """``aiservice serve`` in ``workdir`` on ``environ["PORT"]``, yielded once ``ready_path``
    answers 200; SIGTERM (SIGKILL after 15 s) on exit."""
    url = f"http://127.0.0.1:{environ['PORT']}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiservice", "serve"],
            env=environ,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = Service(url, proc, log_path)
    try:
        _wait_until(service, ready_path, ready_within)
        yield service
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until(service: Service, path: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        if service.proc.poll() is not None:
            code = service.proc.returncode
            raise RuntimeError(f"aiservice exited with {code}:\n{service.output()}")
        try:
            if httpx.get(service.url + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"aiservice did not answer {path} on {service.url}:\n{service.output()}"
            )
        time.sleep(0.1)


def report_numbers(request: pytest.FixtureRequest, **numbers: object) -> None:
    """Attach a probe's counts to its test report (``--junitxml`` writes them as
    properties): docs/reliability.md quotes them."""
    request.node.user_properties.extend(numbers.items())
