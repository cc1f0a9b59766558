"""FastAPI dependencies shared by routers: the runtime, the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..runtime import Runtime
from ..security.apikeys import Principal, extract_key

__all__ = ["AdminPrincipal", "CallerPrincipal", "RuntimeDep", "get_runtime"]


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs sync dependencies in a worker thread per request.
    runtime: Runtime = request.app.state.aiservice
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def require_api_key(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    principal = await runtime.keys.authenticate(extract_key(authorization, x_api_key))
    request.state.principal = principal
    return principal


async def require_admin(
    request: Request,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    principal = await runtime.keys.authenticate_admin(extract_key(authorization, x_api_key))
    request.state.principal = principal
    return principal


CallerPrincipal = Annotated[Principal, Depends(require_api_key)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
