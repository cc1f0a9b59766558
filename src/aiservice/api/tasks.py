"""``POST /internal/tasks/executions``: where Cloud Tasks delivers queue messages.

Async executions, and files attached to vector stores when the queue indexes them; each
message is routed by its ``kind`` (:data:`aiservice.queues.base.MESSAGE_HANDLERS`).

Active only with ``orchestrator.queue.backend: cloud-tasks`` (404 otherwise). The API-key
gate does not apply; the route checks the caller itself:

* ``auth: oidc`` — ``Authorization: Bearer <OIDC token>`` signed by Google for
  ``service_account`` with audience ``audience`` (default ``target_url``);
* ``auth: secret`` — ``X-AIService-Task-Secret`` equal to ``secret`` (constant-time compare).

The execution runs inside this request, so Cloud Run gives it CPU until it ends. Answers:
``204`` the message was handled: the execution finished (succeeded or failed — a failed
flow is not retried) or is unknown / already done; ``503`` with ``Retry-After`` while
another worker holds its lease, and any other error as its 5xx: Cloud Tasks retries the
task, which resumes the execution from its last finished step.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from ..errors import AuthenticationError, InvalidRequestError, NotFoundError
from ..errors import ServiceUnavailableError as Unavailable
from .deps import RuntimeDep
from .routing import JsonRoute

if TYPE_CHECKING:
    from ..config.queues import CloudTasksQueueSettings
    from ..runtime import Runtime

__all__ = ["router"]

log = logging.getLogger("aiservice.orchestrator")

router = APIRouter(tags=["internal"], include_in_schema=False, route_class=JsonRoute)

_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


@router.post("/internal/tasks/executions", status_code=204)
async def run_task(request: Request, runtime: RuntimeDep) -> Response:
    from ..config.queues import effective_queue

    queue = effective_queue(runtime.settings.orchestrator)
    orchestrator = runtime.orchestrator
    if queue.backend != "cloud-tasks" or orchestrator is None:
        raise NotFoundError("no task queue is configured", code="not_found")
    await _authenticate(request, runtime, queue.cloud_tasks)
    from ..orchestrator.service import ExecutionBusyError
    from ..queues.base import REDELIVERIES, Message, handler_for

    try:
        retries = int(request.headers.get("x-cloudtasks-taskretrycount", "0") or 0)
        # JsonRoute parsed the body already (strictly; 415 unless JSON).
        message = Message.parse(await request.json(), delivery=retries + 1)
    except ValueError as exc:
        raise InvalidRequestError(f"not a queue task: {exc}") from exc
    if retries:
        REDELIVERIES.labels("cloud-tasks").inc()
    try:
        await handler_for(runtime)(message)  # by kind: an execution, a vector store file
    except ExecutionBusyError as exc:
        raise Unavailable(str(exc), code="execution_busy", headers={"Retry-After": "5"}) from exc
    return Response(status_code=204)


async def _authenticate(request: Request, runtime: Runtime, cfg: CloudTasksQueueSettings) -> None:
    if cfg.auth == "secret":
        expected = await runtime.secrets.resolve(cfg.secret) if cfg.secret else ""
        given = request.headers.get("x-aiservice-task-secret", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthenticationError("invalid task secret", code="invalid_task_credentials")
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing OIDC token", code="invalid_task_credentials")
    audience = cfg.audience or (cfg.target_url or "").rstrip("/")
    try:
        claims = await asyncio.to_thread(_verify, token, audience, cfg.certs_url)
    except Exception as exc:  # expired, wrong audience, bad signature, unreachable certs
        log.warning("task token refused: %s", exc)
        raise AuthenticationError("invalid OIDC token", code="invalid_task_credentials") from exc
    if claims.get("iss") not in _ISSUERS or not claims.get("email_verified"):
        raise AuthenticationError(
            "OIDC token not issued by Google", code="invalid_task_credentials"
        )
    if claims.get("email") != cfg.service_account:
        raise AuthenticationError("OIDC token of another account", code="invalid_task_credentials")


_GOOGLE_CERTS = "https://www.googleapis.com/oauth2/v1/certs"
_CERTS_TTL = 300.0
_certs: dict[str, tuple[float, dict[str, str]]] = {}


def _verify(token: str, audience: str, certs_url: str | None) -> dict[str, Any]:
    """The token's claims, checked against Google's signing certificates (cached 5 min;
    fetched again once when the token names a key not in the cache, i.e. after rotation)."""
    from google.auth import jwt

    url = certs_url or _GOOGLE_CERTS
    for fresh in (False, True):
        certs = _signing_certs(url, refresh=fresh)
        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=certs, audience=audience, clock_skew_in_seconds=10
            )
            return dict(claims)
        except ValueError as exc:
            if fresh or "Certificate for key id" not in str(exc):
                raise
    raise AssertionError("unreachable")


def _signing_certs(url: str, *, refresh: bool) -> dict[str, str]:
    cached = _certs.get(url)
    if cached is not None and not refresh and cached[0] > time.monotonic():
        return cached[1]
    import google.auth.transport.requests

    response = google.auth.transport.requests.Request()(url=url, method="GET", timeout=10)
    if response.status != 200:
        raise ValueError(f"signing certificates unavailable (HTTP {response.status})")
    certs: dict[str, str] = json.loads(response.data)
    _certs[url] = (time.monotonic() + _CERTS_TTL, certs)
    return certs
