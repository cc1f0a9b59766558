"""A private three-node Redis Cluster (three primaries, no replicas) on loopback ports.

Managed cluster-mode Redis (ElastiCache, Memorystore) rejects multi-key commands across
hash slots and answers ``MOVED`` for keys another shard owns; a single ``redis-server``
does neither, so the cluster backend is tested against a real cluster. Nodes run without
persistence in a temporary directory and are killed afterwards; they require ``password``
as managed clusters usually do (an AUTH token), so the password path is exercised too.
Missing ``redis-server`` or ``redis-cli`` is an error, never a skip: CI installs both
(``scripts/test.sh``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.support.servers import free_port

from .redis_server import RedisProcess

NODES = 3


class RedisCluster:
    def __init__(self, nodes: list[RedisProcess], password: str) -> None:
        self.nodes = nodes
        self.password = password

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """One seed node: the client discovers the others (``CLUSTER SLOTS``)."""
        return f"redis://127.0.0.1:{self.ports[0]}"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH: the Redis Cluster tests need it")
    return path


def _cli(cli: str, *args: str, timeout: float = 10) -> str:
    done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def redis_cluster(password: str) -> Iterator[RedisCluster]:
    cli = _binary("redis-cli")
    auth = ("--no-auth-warning", "-a", password)
    _binary("redis-server")
    with (
        tempfile.TemporaryDirectory(prefix="aiservice-redis-cluster-") as tmp,
        ExitStack() as stack,
    ):
        nodes: list[RedisProcess] = []
        for index in range(NODES):
            directory = Path(tmp) / str(index)
            directory.mkdir()
            node = RedisProcess(
                free_port(),
                "--cluster-enabled", "yes",
                # The bus port defaults to port + 10000, which may be taken or out of range.
                "--cluster-port", str(free_port()),
                "--cluster-config-file", str(directory / "nodes.conf"),
                "--cluster-node-timeout", "2000",
                "--dir", str(directory),
                "--requirepass", password,
            )  # fmt: skip
            node.start()
            stack.callback(node.stop)
            nodes.append(node)
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        create = ("--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes")
        _cli(cli, *auth, *create)
        deadline = time.monotonic() + 10
        for node in nodes:
            # Every node must agree before a test runs: a client seeded from a node that
            # has not seen the others yet would get an incomplete slot map.
            while "cluster_state:ok" not in _cli(
                cli, *auth, "-p", str(node.port), "cluster", "info"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.05)
        yield RedisCluster(nodes, password)
