"""FastAPI dependencies shared by routers: the runtime, the caller's principal.

Every dependency is ``async`` (FastAPI runs sync ones in a worker thread, one hop per
request) and reads what it needs from the ``Request`` itself: each declared ``Header``
parameter is one more field FastAPI resolves and validates per request, on the hot path
of every API call.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..runtime import Runtime
from ..security.apikeys import Principal, extract_key

__all__ = ["AdminPrincipal", "CallerPrincipal", "RuntimeDep", "get_runtime"]


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.aiservice
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _presented_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer`` (see ``extract_key``)."""
    headers = request.headers
    return extract_key(headers.get("authorization"), headers.get("x-api-key"))


async def require_api_key(request: Request) -> Principal:
    runtime: Runtime = request.app.state.aiservice
    principal = await runtime.keys.authenticate(_presented_key(request))
    request.state.principal = principal
    return principal


async def require_admin(request: Request) -> Principal:
    runtime: Runtime = request.app.state.aiservice
    principal = await runtime.keys.authenticate_admin(_presented_key(request))
    request.state.principal = principal
    return principal


CallerPrincipal = Annotated[Principal, Depends(require_api_key)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
