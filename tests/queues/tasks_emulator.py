"""The Cloud Tasks emulator (``gcloud-tasks-emulator`` from PyPI) as a real process.

It pins google-cloud-tasks / grpcio / protobuf versions that conflict with the project's
environment, so it lives in its own cached venv (``.build/tasks-emulator``, or
``$TASKS_EMULATOR_VENV``), created on first use with the pinned version below — the same
approach as ``scripts/mangum-suite.sh``.

The emulator serves the Cloud Tasks gRPC API and dispatches HTTP tasks itself: it POSTs
each task's ``http_request`` (with the ``X-CloudTasks-*`` headers) to its URL, one task at
a time per queue, and puts a task that answered 4xx/5xx or could not connect at the back
of the queue (an immediate retry, without Cloud Tasks' backoff). It does not attach OIDC
tokens, so the tests use the shared-secret authentication.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

VERSION = "0.6.2"
ROOT = Path(__file__).resolve().parents[2]


def emulator_bin() -> Path:
    venv = Path(os.environ.get("TASKS_EMULATOR_VENV", ROOT / ".build" / "tasks-emulator"))
    binary = venv / "bin" / "gcloud-tasks-emulator"
    stamp = venv / f".installed-{VERSION}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"gcloud-tasks-emulator=={VERSION}"], check=True)
        stamp.touch()
    return binary


@dataclass
class Emulator:
    host: str
    queue: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def tasks_emulator(workdir: Path, queue: str) -> Iterator[Emulator]:
    """The emulator on a free port with ``queue`` created; stopped on exit."""
    port = free_port()
    log_path = workdir / "tasks-emulator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(emulator_bin()), "start", "-p", str(port), "-d", queue],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    emulator = Emulator(f"localhost:{port}", queue, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, emulator.output()
            try:
                socket.create_connection(("localhost", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, emulator.output()
                time.sleep(0.1)
        yield emulator
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
