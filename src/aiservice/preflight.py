"""``aiservice check``: the preflight a deployment runs before taking traffic.

Static checks (also with ``--offline``): the configuration loads, every secret reference
resolves, no API key is a placeholder, the capabilities start, and their in-process
readiness checks pass. Then, unless offline, every dependency is asked to answer, all at
once and each within the timeout:

* ``provider <name>``: one cheap authenticated call (:meth:`Provider.probe`);
* ``state <backend>``: a ping of ``cache.backend`` (a failure here fails the check, where
  readiness only warns because the service runs uncached);
* ``queue``: the async execution queue exists and answers (``Queue.check``:
  ``GetQueueAttributes`` on SQS, ``GetQueue`` on Cloud Tasks, the stream's consumer group
  on Redis); not run for the in-process queue; run when flows or vector stores use it;
* ``vectors <backend>``: the vector backend answers and its collections' metadata reads
  (the metadata collection, each store's collection); offline: ``skipped``, and no
  collection is read or written at startup either;
* ``dns <host>``: the hosts of flow step URLs that are literal (or built from settings only).

A row is ``(check, status, detail)`` with status ``ok``, ``warn``, ``fail`` or ``skipped``;
details never hold a secret (registered secret values are redacted as in logs).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .config import Settings
from .observability.redact import redact
from .queues.base import CONSUMERS
from .vectors.service import CONNECT as VECTORS_CONNECT

if TYPE_CHECKING:
    from .runtime import Runtime
    from .vectors.service import VectorStores

__all__ = ["DEFAULT_TIMEOUT", "Row", "run_checks"]

Row = tuple[str, str, str]
Probe = Callable[[], Awaitable[str]]
T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
# Readiness checks the preflight replaces with a stricter row of its own (``state``,
# ``vectors <backend>``).
_REPLACED_HEALTH = frozenset({"cache", "vectors"})
_STORES_READ = 50  # collections whose metadata the vectors row reads, at most


async def run_checks(
    settings: Settings, *, offline: bool = False, timeout: float = DEFAULT_TIMEOUT
) -> list[Row]:
    """Every check's row, in a stable order. Raises ConfigError for placeholder keys."""
    from .app import CAPABILITIES, _load_capabilities, start_hooks
    from .runtime import Runtime

    profile = f" + profile {settings.profile}" if settings.profile else ""
    rows: list[Row] = [("config", "ok", f"{', '.join(settings.sources) or 'defaults'}{profile}")]
    runtime = Runtime(settings)
    secret_results = await runtime.secrets.check_all()
    for ref, err in secret_results.items():
        rows.append((f"secret {ref}", "fail" if err else "ok", str(err) if err else "resolved"))
    if any(secret_results.values()):
        rows.append(("startup", "skipped", "unresolved secret references"))
        return rows
    await runtime.keys.verify()
    hooks = start_hooks(_load_capabilities(CAPABILITIES))
    # The app starts without queue consumers: a preflight takes no work from a queue.
    consume = CONSUMERS.set(False)
    connect = VECTORS_CONNECT.set(not offline)
    try:
        await runtime.start(hooks)
    except Exception as exc:  # report any startup failure as a failed check
        rows.append(("startup", "fail", redact(f"{type(exc).__name__}: {exc}")))
        return rows
    finally:
        CONSUMERS.reset(consume)
        VECTORS_CONNECT.reset(connect)
    try:
        for result in await runtime.health.run():
            if result.name in _REPLACED_HEALTH:
                continue
            status = "ok" if result.ok else ("fail" if result.required else "warn")
            detail = result.detail or f"{result.latency_ms:.1f} ms"
            rows.append((result.name, status, redact(detail)))
        if not offline:
            checks = list(dependency_checks(runtime))
            rows += await asyncio.gather(*(_timed(name, fn, timeout) for name, fn in checks))
        elif runtime.vectors is not None:
            rows.append((f"vectors {settings.vectors.backend}", "skipped", "offline"))
    finally:
        await runtime.close()
    return rows


def dependency_checks(runtime: Runtime) -> Iterator[tuple[str, Probe]]:
    """``(row name, probe)`` for each external dependency of a started runtime."""
    settings = runtime.settings
    if runtime.state is not None:
        yield f"state {settings.cache.backend}", _state_probe(runtime)
    gateway = runtime.gateway
    if gateway is not None:
        for name, provider in gateway.table.providers.items():
            probe = getattr(provider, "probe", None) or _count_models(provider)
            yield f"provider {name} ({settings.providers[name].type})", probe
    vectors = runtime.vectors
    if vectors is not None:
        yield f"vectors {settings.vectors.backend}", _vectors_probe(vectors)
    orchestrator = runtime.orchestrator
    durable = orchestrator is not None and orchestrator.queue.durable
    if durable or (vectors is not None and vectors.enqueue is not None):
        yield "queue", _queue_probe(runtime)  # without flows or vectors nothing sends to it
    if orchestrator is not None:
        yield from _flow_host_checks(orchestrator, settings)


async def _timed(name: str, probe: Probe, timeout: float) -> Row:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), timeout)
    except TimeoutError:
        return name, "fail", f"no answer within {timeout:g}s"
    except Exception as exc:  # a failing dependency is a row, not a crash
        message = str(exc) or type(exc).__name__
        return name, "fail", redact(f"{type(exc).__name__}: {message}")
    elapsed = (time.perf_counter() - started) * 1000
    return name, "ok", redact(f"{detail} ({elapsed:.0f} ms)")


async def _off_loop(fn: Callable[[], T]) -> T:
    """``fn()`` on a daemon thread: a blocking call that outlives its timeout must not
    hold the process at exit (the default executor is joined by ``asyncio.run``)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def run() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is gone: the check timed out and the run ended
            pass

    threading.Thread(target=run, daemon=True, name="aiservice-check").start()
    return await future


def _count_models(provider: Any) -> Probe:
    """Third-party providers without ``probe``: listing models is the cheap call."""

    async def probe() -> str:
        return f"{len(await provider.list_models())} models"

    return probe


def _state_probe(runtime: Runtime) -> Probe:
    from .cache.state import get_state

    async def probe() -> str:
        await get_state(runtime).ping()
        return "answered"

    return probe


def _vectors_probe(vectors: VectorStores) -> Probe:
    async def probe() -> str:
        backend = vectors.backend
        await backend.ping()
        # Readable metadata: the records collection, then each store's collection info
        # (what a search reads first: its dimension).
        records = await backend.count(vectors.meta.collection)
        stores = await vectors.meta.find("store")
        for store in stores[:_STORES_READ]:
            await backend.dimension(vectors.collection(store["id"]))
        return f"{records} records, {len(stores)} stores"

    return probe


def _queue_probe(runtime: Runtime) -> Probe:
    from .orchestrator.setup import build_queue

    async def check() -> str:
        queue = build_queue(runtime)  # its own clients, on this thread's loop
        try:
            return await queue.check()
        finally:
            await queue.stop()

    async def probe() -> str:
        # On its own loop in a daemon thread: a blocking SDK call that outlives the
        # timeout must not hold the process at exit.
        return await _off_loop(lambda: asyncio.run(check()))

    return probe


def _flow_host_checks(orchestrator: Any, settings: Settings) -> Iterator[tuple[str, Probe]]:
    """One DNS check per host of a step URL known before any request arrives."""
    from .orchestrator.loader import settings_scope

    scope = {"settings": settings_scope(settings)}
    hosts: dict[str, set[str]] = {}
    for flow in orchestrator.flows.values():
        for step_id, step in flow.steps.items():
            if any(path.root != "settings" for path in step.url.paths()):
                continue  # built from the request: unknown until then
            url = str(step.url.render(scope) or "")
            host = urlsplit(url).hostname
            if host:
                hosts.setdefault(host, set()).add(flow.name)
            else:
                where = f"flow {flow.name} step {step_id}"
                yield where, _failing(f"the step URL has no host: {url!r}")
    for host, flows in sorted(hosts.items()):
        yield f"dns {host}", _resolve(host, sorted(flows))


def _failing(message: str) -> Probe:
    async def probe() -> str:
        raise ValueError(message)

    return probe


def _resolve(host: str, flows: list[str]) -> Probe:
    def lookup() -> str:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        addresses = sorted({str(info[4][0]) for info in infos})
        return ", ".join(addresses[:3])

    async def probe() -> str:
        try:
            addresses = await _off_loop(lookup)
        except socket.gaierror as exc:
            raise LookupError(f"{host} does not resolve ({exc.strerror})") from exc
        return f"{addresses} (flows: {', '.join(flows)})"

    return probe
