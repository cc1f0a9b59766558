"""The DAG executor: ready-set scheduling with graphlib, a concurrency limit, cancellation.

Steps start as soon as their dependencies are done (not level by level), at most
``max_concurrency`` at a time. A skipped step (``when`` false) is done with no output. A
failed required step cancels the steps in flight and fails the flow; an optional step's
failure is recorded and the flow goes on. The whole run is bounded by the flow timeout.

The executor mutates the execution record in place and calls ``persist``
after each step, so a poller sees progress and a redelivered queue message can resume: steps
already ``succeeded`` or ``skipped`` in the record are not run again.
"""

from __future__ import annotations

import asyncio
import graphlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..observability import metrics
from ..observability.context import bind
from ..observability.redact import redact
from ..secrets.base import SecretResolver
from ..security.ssrf import SSRFError, SSRFGuard
from .auth import StepAuthenticator
from .calls import CallResult, RenderedRequest, call
from .clients import ClientPool
from .kinds import ErrorKind
from .loader import secret_ref
from .model import Flow, Step
from .record import ExecutionRecord, StepState, StepsView

__all__ = ["Executor", "STEP_DURATION", "nested_secrets"]

log = logging.getLogger("aiservice.orchestrator")

STEP_DURATION = metrics.histogram(
    "aiservice_orchestrator_step_duration_seconds",
    "Orchestrator step duration by flow, step and final status.",
    ("flow", "step", "status"),
)

DONE = ("succeeded", "skipped")
Persist = Callable[[], Awaitable[None]]


async def nested_secrets(secrets: SecretResolver, paths: frozenset[tuple[str, ...]]) -> Any:
    """``{"env": {"TOKEN": value}}`` for the ``secrets.*`` paths a template reads."""
    tree: dict[str, Any] = {}
    for parts in paths:
        value = await secrets.resolve(secret_ref(parts))
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


class Executor:
    """Runs flows; one per orchestrator, sharing the HTTP clients and auth caches."""

    def __init__(
        self,
        *,
        clients: ClientPool,
        guard: SSRFGuard,
        auth: StepAuthenticator,
        secrets: SecretResolver,
        settings_scope: dict[str, Any],
        max_concurrency: int,
        default_timeout: float,
    ) -> None:
        self._clients = clients
        self._guard = guard
        self._auth = auth
        self._secrets = secrets
        self._settings_scope = settings_scope
        self._max_concurrency = max_concurrency
        self._default_timeout = default_timeout

    def scope(self, record: ExecutionRecord, secrets: Any = None) -> dict[str, Any]:
        """What templates see: input, step results so far, settings, resolved secrets."""
        return {
            "input": record.input,
            "steps": StepsView(record.steps),
            "settings": self._settings_scope,
            "secrets": secrets or {},
        }

    async def run(self, flow: Flow, record: ExecutionRecord, persist: Persist) -> None:
        """Run (or resume) ``record``; sets its status, error, error kind and step states."""
        for sid in flow.steps:
            if sid not in record.steps or record.steps[sid].status not in DONE:
                record.steps[sid] = StepState()
        limit = min(flow.spec.max_concurrency or self._max_concurrency, self._max_concurrency)
        deadline = time.monotonic() + flow.spec.timeout
        semaphore = asyncio.Semaphore(limit)
        tasks: dict[asyncio.Task[CallResult | None], str] = {}
        record.status, record.error, record.error_kind = "running", None, None
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + flow.spec.timeout):
                await self._schedule(flow, record, persist, tasks, semaphore, deadline)
        except TimeoutError:
            record.fail(ErrorKind.FLOW_TIMEOUT, f"flow timed out after {flow.spec.timeout:g}s")
        finally:
            await self._cancel(tasks)
        if record.status == "running":
            record.status = "succeeded"
        else:
            record.cancel_unfinished()

    async def _schedule(
        self,
        flow: Flow,
        record: ExecutionRecord,
        persist: Persist,
        tasks: dict[asyncio.Task[CallResult | None], str],
        semaphore: asyncio.Semaphore,
        deadline: float,
    ) -> None:
        sorter = graphlib.TopologicalSorter(flow.graph)
        sorter.prepare()
        # Steps report their end on a queue: asyncio.wait(FIRST_COMPLETED) would add and
        # remove a callback on every running step each time one ends, O(n^2) in a fan-out.
        ended: asyncio.Queue[asyncio.Task[CallResult | None]] = asyncio.Queue()
        while sorter.is_active():
            for sid in sorter.get_ready():
                if record.steps[sid].status in DONE:  # resumed from a previous worker
                    sorter.done(sid)
                    continue
                step = flow.steps[sid]
                task = asyncio.create_task(self._step(flow, step, record, semaphore, deadline))
                task.add_done_callback(ended.put_nowait)
                tasks[task] = sid
            if not tasks:
                continue
            finished = [await ended.get()]
            while not ended.empty():  # every step that ended meanwhile: one persist for all
                finished.append(ended.get_nowait())
            for task in finished:
                sid = tasks.pop(task)
                state = record.steps[sid]
                if state.status == "failed" and not flow.steps[sid].spec.optional:
                    timed_out = state.error_kind is ErrorKind.STEP_TIMEOUT
                    kind = ErrorKind.STEP_TIMEOUT if timed_out else ErrorKind.STEP_FAILED
                    record.fail(kind, f"step {sid!r} failed: {state.error}")
                sorter.done(sid)
            await persist()
            if record.status == "failed":
                return

    @staticmethod
    async def _cancel(tasks: dict[asyncio.Task[CallResult | None], str]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()

    async def _step(
        self,
        flow: Flow,
        step: Step,
        record: ExecutionRecord,
        semaphore: asyncio.Semaphore,
        deadline: float,
    ) -> CallResult | None:
        state = record.steps[step.id]
        async with semaphore:
            with bind(step=step.id):
                start = time.perf_counter()
                state.status = "running"
                try:
                    result = await self._execute(step, record, deadline)
                except asyncio.CancelledError:
                    state.cancel("cancelled")
                    log.info("step cancelled")
                    raise
                finally:
                    elapsed = time.perf_counter() - start
                    state.duration_ms = round(elapsed * 1000, 2)
                    STEP_DURATION.labels(flow.name, step.id, state.status).observe(elapsed)
                return result

    async def _execute(
        self, step: Step, record: ExecutionRecord, deadline: float
    ) -> CallResult | None:
        state = record.steps[step.id]
        try:
            scope = self.scope(record, await nested_secrets(self._secrets, step.secrets))
            if step.when is not None and not step.when.evaluate(scope):
                state.status = "skipped"
                log.info("step skipped (when is false)")
                return None
            request = RenderedRequest(
                method=step.spec.method,
                url=str(step.url.render(scope)),
                headers={k: str(v) for k, v in step.headers.render(scope).items()},
                query=step.query.render(scope),
                body=step.body.render(scope),
            )
            if step.origin is None:
                # Also checked per connection; this refuses early, without retries.
                await self._guard.check_url(request.url)
        except Exception as exc:  # a bad rendered URL or unresolvable secret fails the step
            refused = isinstance(exc, SSRFError)
            kind = ErrorKind.URL_NOT_ALLOWED if refused else ErrorKind.REQUEST_NOT_BUILT
            state.fail(kind, f"{type(exc).__name__}: {exc}")
            log.warning("step failed before sending: %s", state.error)
            return None
        result = await call(
            self._clients.get(literal=step.origin is not None),
            step.spec,
            request,
            self._auth,
            timeout=step.spec.timeout or self._default_timeout,
            deadline=deadline,
        )
        state.attempts, state.http_status = result.attempts, result.http_status
        state.output = result.output
        if result.kind is None:
            state.status = "succeeded"
            log.info("step succeeded", extra={"attempts": result.attempts})
        else:
            # Errors quote upstream bodies, which may echo a credential we sent.
            state.fail(result.kind, redact(result.error) if result.error else None)
            log.warning("step failed: %s", state.error, extra={"attempts": result.attempts})
        return result
