"""The orchestrator component: accept, run, resume and report executions.

One :class:`Orchestrator` per app (built by :func:`start`). Sync requests run in the
request; async ones are stored, then handed to the configured queue
(``orchestrator.queue``, :mod:`aiservice.queues`): a task of this process (``inprocess``),
SQS (Lambda), Cloud Tasks (calls back :mod:`aiservice.api.tasks`) or a Redis stream read by
every instance. Whatever delivers the message calls :meth:`Orchestrator.resume`.

A worker holds a lease on the execution (renewed while it runs, :mod:`.lease`) and the
store counts the workers that started it. A redelivered message resumes the execution
(finished steps are not repeated; the one in flight when the worker died runs again); after
``max_worker_attempts`` starts it is marked failed. With the non-durable in-process queue,
an execution whose worker vanished (no lease) is reported failed instead of "running".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..observability import metrics, tracing
from ..observability.context import bind
from ..queues.base import Message, Queue, cancel_and_wait
from ..security.ssrf import SSRFError, SSRFGuard
from .auth import StepAuthenticator
from .clients import ClientPool
from .executor import Executor, nested_secrets
from .inputs import validate_input
from .kinds import ErrorKind
from .lease import LeaseWatch, heartbeat
from .loader import settings_scope
from .model import Flow, FlowError
from .origin import reads_only
from .record import ExecutionRecord, ExecutionStatus, StepState, WebhookReport, now
from .store import ExecutionStore, fingerprint
from .webhook import WebhookPolicy, WebhookSender

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["EXECUTIONS", "ExecutionBusyError", "Orchestrator"]

log = logging.getLogger("aiservice.orchestrator")

EXECUTIONS = metrics.counter(
    "aiservice_orchestrator_executions_total",
    "Orchestrator executions by flow and final status.",
    ("flow", "status"),
)


_FIRST_WRITE_GRACE = 2.0


class ExecutionBusyError(RuntimeError):
    """Another worker holds the execution's lease; the queue should redeliver later."""


class Orchestrator:
    def __init__(
        self,
        runtime: Runtime,
        flows: dict[str, Flow],
        errors: list[FlowError],
        store: ExecutionStore,
        queue: Queue,
    ) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.config = settings.orchestrator
        self.flows = flows
        self.errors = errors
        self.store = store
        self.queue = queue
        self.guard = SSRFGuard(self.config.ssrf_allowlist)
        origins = {origin for flow in flows.values() for origin in flow.origins()}
        self.clients = ClientPool(self.guard, self.guard.extended(o.rule() for o in origins))
        self.executor = Executor(
            clients=self.clients,
            guard=self.guard,
            auth=StepAuthenticator(settings, runtime.secrets),
            secrets=runtime.secrets,
            settings_scope=settings_scope(settings),
            max_concurrency=self.config.max_concurrency,
            default_timeout=self.config.default_step_timeout,
        )
        hook = self.config.webhook
        self.webhooks = WebhookSender(
            WebhookPolicy(hook.timeout, hook.max_attempts, hook.initial_delay)
        )
        self.worker_id = uuid.uuid4().hex

    # -- requests -------------------------------------------------------------------------

    def flow(self, name: str) -> Flow:
        flow = self.flows.get(name)
        if flow is None:
            invalid = any(e.flow == name for e in self.errors)
            detail = " (it is defined but invalid; see /health/ready)" if invalid else ""
            raise ErrorKind.FLOW_NOT_FOUND.error(f"unknown flow {name!r}{detail}")
        return flow

    async def submit(
        self,
        name: str,
        payload: Any,
        *,
        principal: str,
        asynchronous: bool,
        idempotency_key: str | None = None,
    ) -> ExecutionRecord:
        """Validate, then run (sync) or schedule (async); returns the execution record."""
        flow = self.flow(name)
        data = validate_input(flow.spec.input, payload)
        await self._check_webhook_url(flow, data)
        record = self._new_record(flow, data, principal, "queued" if asynchronous else "running")
        if idempotency_key:
            earlier = await self.store.claim_key(
                f"{principal}\0{name}",
                idempotency_key,
                record.execution_id,
                fingerprint(name, data),
            )
            if earlier is not None:
                return await self._existing(earlier, flow, wait=not asynchronous)
        if not asynchronous:
            return await self.execute(record)
        await self.store.save(record)
        await self._enqueue(record)
        return record

    async def get(self, execution_id: str, principal: str, admin: bool = False) -> ExecutionRecord:
        record = await self.store.get(execution_id)
        # Another caller's execution is reported as absent, not forbidden: ids do not leak.
        if record is None or (record.principal != principal and not admin):
            raise ErrorKind.EXECUTION_NOT_FOUND.error(f"no execution {execution_id!r}")
        if await self._is_stale(record):
            record = await self._fail_stale(record)
        return record

    async def _is_stale(self, record: ExecutionRecord) -> bool:
        """In-process, a run nobody holds a lease on will never finish (its instance died).

        With a durable queue, a redelivered message will resume it instead. A queued record
        gets a lease period of grace: its task takes the lease just after the 202 is sent.
        """
        if self.queue.durable or record.finished:
            return False
        if await self.store.lease_holder(record.execution_id) is not None:
            return False
        if record.status == "running":
            return True
        updated = datetime.fromisoformat(record.updated_at.replace("Z", "+00:00"))
        age = (datetime.now(UTC) - updated).total_seconds()
        return age > self.config.lease_seconds

    async def _existing(self, execution_id: str, flow: Flow, *, wait: bool) -> ExecutionRecord:
        start = time.monotonic()
        while True:
            record = await self.store.get(execution_id)
            if record is None:
                # The first request claims the key a moment before it stores the record.
                if time.monotonic() - start < _FIRST_WRITE_GRACE:
                    await asyncio.sleep(0.05)
                    continue
                raise ErrorKind.EXECUTION_NOT_FOUND.error(f"execution {execution_id!r} expired")
            if await self._is_stale(record):
                return await self._fail_stale(record)
            waited = time.monotonic() - start
            if not wait or record.finished or waited > flow.spec.timeout:
                return record
            await asyncio.sleep(0.05)

    async def _check_webhook_url(self, flow: Flow, data: dict[str, Any]) -> None:
        """A built webhook URL known from the request alone is refused with a 400 now."""
        template = flow.webhook_url
        if template is None or not flow.webhook_guarded:
            return
        if not reads_only(template.paths(), ("input", "settings")):
            return  # needs step outputs or secrets: checked when it is delivered
        request = ExecutionRecord(flow=flow.name, status="queued", input=data)
        url = template.render(self.executor.scope(request))
        if url:
            await self.guard.check_url(str(url))

    def _new_record(
        self, flow: Flow, data: dict[str, Any], principal: str, status: ExecutionStatus
    ) -> ExecutionRecord:
        stamp = now()
        return ExecutionRecord(
            execution_id=uuid.uuid4().hex,
            flow=flow.name,
            status=status,
            mode="async" if status == "queued" else "sync",
            created_at=stamp,
            updated_at=stamp,
            steps={sid: StepState() for sid in flow.steps},
            input=data,
            principal=principal,
            trace=tracing.traceparent(),
        )

    # -- running --------------------------------------------------------------------------

    async def execute(self, record: ExecutionRecord) -> ExecutionRecord:
        """Run or resume ``record`` under a lease; store and report the result."""
        execution_id, flow = record.execution_id, self.flow(record.flow)
        with (
            tracing.resume(record.trace),
            tracing.span(f"execution {flow.name}", {"aiservice.flow": flow.name}),
            bind(execution_id=execution_id, flow=flow.name),
        ):
            if not await self.store.acquire_lease(
                execution_id, self.worker_id, self.config.lease_seconds
            ):
                raise ExecutionBusyError(f"execution {execution_id} is running on another worker")
            runner = asyncio.current_task()
            assert runner is not None
            lease = LeaseWatch()
            renewing = asyncio.create_task(
                heartbeat(
                    self.store,
                    execution_id,
                    self.worker_id,
                    self.config.lease_seconds,
                    runner,
                    lease,
                )
            )
            try:
                starts = await self.store.count_attempt(execution_id)
                if starts > self.config.max_worker_attempts:
                    gave_up = f"gave up after {starts - 1} worker attempts"
                    record.fail(ErrorKind.WORKER_LOST, gave_up)
                else:
                    log.info("execution started", extra={"worker_attempt": starts})
                    await self._run(flow, record)
                await self._finish(flow, record)
            except asyncio.CancelledError:
                lease.leaving = True
                if not lease.lost or lease.withdraw(runner) > 0:
                    raise  # a shutdown, not (only) the lost lease
                raise ExecutionBusyError(
                    f"lost the lease on execution {execution_id} to another worker"
                ) from None
            finally:
                lease.leaving = True
                try:  # not a bare cancel + await: a swallowed cancel would hang here
                    await cancel_and_wait(renewing)
                finally:
                    await self.store.release_lease(execution_id, self.worker_id)
        return record

    async def _run(self, flow: Flow, record: ExecutionRecord) -> None:
        async def persist() -> None:
            record.updated_at = now()
            await self.store.save(record)

        async def progress() -> None:
            # Async runs store each step (pollers see progress; a redelivery resumes from
            # it). A sync caller only ever sees the result, so its run skips the writes.
            if record.mode == "async":
                await persist()

        record.status = "running"
        await persist()
        await self.executor.run(flow, record, progress)
        if record.succeeded:
            scope = self.executor.scope(record, await self._flow_secrets(flow))
            rendered = flow.output.render(scope)
            record.output = (
                rendered
                if flow.spec.output is not None
                else {sid: s.output for sid, s in record.steps.items()}
            )

    async def _flow_secrets(self, flow: Flow) -> Any:
        return await nested_secrets(self.runtime.secrets, flow.secrets)

    async def _finish(self, flow: Flow, record: ExecutionRecord) -> None:
        spec = flow.spec.webhook
        if spec is not None and record.status in spec.events:
            await self._deliver_webhook(flow, record)
        record.updated_at = now()
        await self.store.save(record)
        EXECUTIONS.labels(flow.name, record.status).inc()
        extra = {"error": record.error, "error_kind": record.error_kind}
        log.info("execution %s", record.status, extra=extra)

    async def _deliver_webhook(self, flow: Flow, record: ExecutionRecord) -> None:
        spec, template = flow.spec.webhook, flow.webhook_url
        assert spec is not None and template is not None
        url = template.render(self.executor.scope(record, await self._flow_secrets(flow)))
        if not url:  # e.g. no callback_url in this request
            return
        if flow.webhook_guarded:
            try:  # also checked per connection; this refuses early, without retries
                await self.guard.check_url(str(url))
            except SSRFError as exc:
                log.warning("webhook not delivered: %s", exc.message)
                record.webhook = WebhookReport(error=exc.message)
                return
        secret = await self.runtime.secrets.resolve(spec.secret) if spec.secret else None
        client = self.clients.get(literal=not flow.webhook_guarded)
        payload = {
            "type": f"orchestrator.execution.{record.status}",
            "timestamp": now(),
            "data": record.public(),
        }
        msg_id = f"msg_{record.execution_id}"  # stable across retries and redeliveries
        with tracing.webhook_span(str(url)) as span:
            record.webhook = await self.webhooks.deliver(client, str(url), secret, msg_id, payload)
            report = record.webhook
            failed = None if report.status == "delivered" else "webhook_failed"
            span.outcome(report.attempts, report.http_status, failed)

    async def _fail_stale(self, record: ExecutionRecord) -> ExecutionRecord:
        record.fail(ErrorKind.WORKER_LOST, "the worker running this execution stopped")
        record.cancel_unfinished()
        record.updated_at = now()
        await self.store.save(record)
        EXECUTIONS.labels(record.flow, "failed").inc()
        return record

    async def consume(self, message: Message) -> None:
        """The handler queues consuming inside this process call (see ``Queue.start``)."""
        await self.resume(message.execution_id)

    async def resume(self, execution_id: str) -> None:
        """Queue worker entry: run or resume; no-op if finished or unknown.

        Raises :class:`ExecutionBusyError` while another worker holds the lease (and the
        state store's errors): the queue delivers the message again later.
        """
        record = await self.store.get(execution_id)
        if record is None:
            log.warning("execution %s is unknown or expired; dropping the message", execution_id)
            return
        if record.finished:
            return
        if record.flow not in self.flows:
            record.fail(ErrorKind.FLOW_GONE, f"flow {record.flow!r} is no longer defined")
            await self.store.save(record)
            return
        try:
            await self.execute(record)
        except asyncio.CancelledError:
            if not self.queue.durable:
                # Nobody would resume it: report it failed rather than running.
                record.fail(ErrorKind.CANCELLED, "interrupted: the service shut down")
                await asyncio.shield(self.store.save(record))
            raise

    async def _enqueue(self, record: ExecutionRecord) -> None:
        try:
            await self.queue.enqueue(Message.execution(record.execution_id, record.flow))
        except Exception as exc:
            kind = ErrorKind.QUEUE_UNAVAILABLE
            record.fail(kind, f"could not enqueue: {type(exc).__name__}")
            await self.store.save(record)
            raise kind.error("could not enqueue the execution") from exc

    async def aclose(self) -> None:
        await self.queue.stop()  # running executions end (or are handed over) first
        await self.clients.aclose()
