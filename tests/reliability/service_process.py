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


@contextmanager
def serve_process(
    workdir: Path, config: dict[str, Any], *, env: dict[str, str] | None = None
) -> Iterator[Service]:
    """Write ``config`` as ``aiservice.yaml`` in ``workdir``, serve it, yield once it answers.

    Stops the process with SIGTERM (SIGKILL after 15 s) on exit; the output stays readable.
    """
    (workdir / "aiservice.yaml").write_text(yaml.safe_dump(config))
    environ = port_env(**(env or {}))
    url = f"http://127.0.0.1:{environ['PORT']}"
    log_path = workdir / "service.log"
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
        _wait_until_live(service)
        yield service
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_live(service: Service) -> None:
    deadline = time.monotonic() + 30
    while True:
        if service.proc.poll() is not None:
            code = service.proc.returncode
            raise RuntimeError(f"aiservice exited with {code}:\n{service.output()}")
        try:
            if httpx.get(service.url + "/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"aiservice did not answer on {service.url}:\n{service.output()}")
        time.sleep(0.1)


def report_numbers(request: pytest.FixtureRequest, **numbers: object) -> None:
    """Attach a probe's counts to its test report (``--junitxml`` writes them as
    properties): docs/reliability.md quotes them."""
    request.node.user_properties.extend(numbers.items())
