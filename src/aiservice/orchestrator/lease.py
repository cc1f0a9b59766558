"""The worker's lease on a running execution: the heartbeat that renews it while the run
goes on, and stops the run when another worker has taken the lease over.

:meth:`~.service.Orchestrator.execute` takes the lease, starts :func:`heartbeat` beside
the run and tells it through a :class:`LeaseWatch` when the run is leaving; the heartbeat
tells the run through the same watch that the lease was lost (and how often it cancelled
the run, so the run can tell those cancels from a shutdown's).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import ExecutionStore

__all__ = ["LeaseWatch", "heartbeat"]

log = logging.getLogger("aiservice.orchestrator")

_RECANCEL_EVERY = 0.1


@dataclass(slots=True)
class LeaseWatch:
    """What the lease heartbeat and the run it guards tell each other."""

    lost: bool = False
    """Another worker holds the lease: the heartbeat is cancelling the run."""
    cancels: int = 0
    """Cancels the heartbeat sent (some may have been swallowed on the way)."""
    leaving: bool = False
    """The run is stopping: cancelling it again would interrupt its clean-up."""

    def withdraw(self, runner: asyncio.Task[Any]) -> int:
        """Take back the heartbeat's cancels; what is left came from elsewhere (a
        shutdown), so the run must end cancelled."""
        left = runner.cancelling()
        for _ in range(self.cancels):
            left = runner.uncancel()
        return left


async def heartbeat(
    store: ExecutionStore,
    execution_id: str,
    worker_id: str,
    ttl: float,
    runner: asyncio.Task[Any],
    lease: LeaseWatch,
) -> None:
    """Renew the lease; if another worker took it over, stop this run.

    Two workers must not run one execution: the one that lost the lease (its renewals
    failed for ``lease_seconds``: a stalled loop, a partition) stops at once and
    leaves the execution to the new holder, writing nothing more. The run is
    cancelled again until it leaves: redis-py can swallow a cancel that lands while
    a reply is read (see :func:`~aiservice.queues.base.cancel_and_wait`), and a run
    that carried on would write over the new holder's progress.
    """
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            renewed = await store.renew_lease(execution_id, worker_id, ttl)
        except Exception as exc:  # the store is down: keep running, try again
            log.warning("could not renew the lease on execution %s: %s", execution_id, exc)
            continue
        if not renewed:
            log.warning("lost the lease on execution %s: stopping", execution_id)
            lease.lost = True
            while not lease.leaving:  # ended by the run's cancel_and_wait(heartbeat)
                runner.cancel()
                lease.cancels += 1
                await asyncio.sleep(_RECANCEL_EVERY)
            return
