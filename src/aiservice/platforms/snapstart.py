"""Lambda SnapStart for Python: start the app before the snapshot, refresh it after each restore.

With SnapStart on (``deploy.lambda_snapstart``), Lambda runs the init phase once, when a
version is published, snapshots the initialised environment's memory, and resumes new
environments from that snapshot instead of importing and starting from scratch. The Python
runtime ships a module, ``snapshot_restore_py``, for hooks around that; :func:`register`
adds two:

* **before the snapshot** - run the app's startup through the Lambda bridge's lifespan, so
  the snapshot holds a started app (modules imported, settings loaded, clients built) and a
  restored environment answers its first request without paying for either;
* **after each restore** - re-seed :mod:`random`, mark every cached secret stale, then run
  the app's shutdown and startup again.

Why shutdown + startup rather than a registry of "reconnect" callbacks: everything a
snapshot must not share is built by the capabilities' ``start`` hooks and closed through
``runtime.stack`` - the pooled upstream HTTP clients, Redis / DynamoDB / SQS clients and
their connections (dead after a restore: the peer never saw the pause), and per-instance
identifiers drawn from ``os.urandom`` (the response cache's lease owner, the orchestrator's
worker id), which would otherwise be identical in every environment restored from one
snapshot. Running the same code again rebuilds exactly that set, and a capability added
later is covered without registering anything. It stays cheap: every module is already
imported, and startup only constructs objects and re-reads the secrets.

Secrets are marked stale, not dropped, because the resolver's TTL runs on a monotonic clock
that cannot be trusted across a snapshot (the snapshot may be days old while the clock says
seconds); startup then fetches each referenced secret again, and keeps the last good value
if its store is unreachable. :mod:`uuid` (``uuid4``) and :mod:`secrets` read
``os.urandom`` on every call, so they need nothing; :mod:`random` is a Mersenne Twister
whose state is in the snapshot, so every restored environment would draw the same numbers
(retry jitter, sampling) until it is re-seeded.

Nothing happens unless Lambda initialises the function for SnapStart
(``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``): other functions import nothing more.
"""

from __future__ import annotations

import importlib
import logging
import random
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .aws_lambda import LambdaHandler

__all__ = ["HOOKS_MODULE", "after_restore", "before_snapshot", "hooks_module", "register"]

log = logging.getLogger("aiservice.platforms")

HOOKS_MODULE = "snapshot_restore_py"
# What Lambda sets during the init phase of a function version published with SnapStart.
INIT_TYPE_VARIABLE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAPSTART_INIT = "snap-start"


def hooks_module() -> ModuleType | None:
    """The runtime's ``snapshot_restore_py``, or ``None`` where it is not installed."""
    try:
        return importlib.import_module(HOOKS_MODULE)
    except ImportError:
        return None


def register(handler: LambdaHandler, runtime: Runtime) -> bool:
    """Register the SnapStart hooks for ``handler`` when this is a SnapStart init.

    Returns whether the hooks were registered. Every managed runtime that offers SnapStart
    for Python (python3.12+) ships ``snapshot_restore_py``; should it be missing anyway,
    the snapshot holds the imported app without the hooks, and a warning says so: the app
    then starts on the first request, and restored environments share their random state.
    """
    if runtime.settings.environ.get(INIT_TYPE_VARIABLE) != SNAPSTART_INIT:
        return False
    module = hooks_module()
    if module is None:
        log.warning(
            "SnapStart init without the %s module: the app is not started before the "
            "snapshot and not refreshed after a restore (use python3.12 or later)",
            HOOKS_MODULE,
        )
        return False
    module.register_before_snapshot(before_snapshot, handler)
    module.register_after_restore(after_restore, handler, runtime)
    return True


def before_snapshot(handler: LambdaHandler) -> None:
    """Start the app once, on the handler's own loop, so the snapshot holds it started.

    A startup failure raises here, which fails the version's publication: better than
    snapshotting an app that would fail every restored environment's first request.
    """
    handler.loop.run_until_complete(handler.app_lifespan.startup())
    log.info("app started before the SnapStart snapshot")


def after_restore(handler: LambdaHandler, runtime: Runtime) -> None:
    """Make a restored environment its own: new random state, fresh secrets and clients."""
    random.seed()  # from os.urandom, which differs in every restored environment
    runtime.secrets.expire_all()
    handler.loop.run_until_complete(_restart(handler, runtime))
    log.info("app restarted after a SnapStart restore")


async def _restart(handler: LambdaHandler, runtime: Runtime) -> None:
    await handler.app_lifespan.shutdown()
    if runtime.started:
        # Started outside the lifespan (lifespan="off", or an app whose startup failed and
        # that then started on its first request): close it; the next request restarts it.
        await runtime.close()
    await handler.app_lifespan.startup()
