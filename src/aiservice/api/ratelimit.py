"""The rate-limit admission of every API request, as a FastAPI dependency.

The limiter itself (counters, budgets, headers) is :mod:`aiservice.cache.ratelimit`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..cache.ratelimit import Admission
from ..runtime import Runtime
from .deps import CallerPrincipal

__all__ = ["RateLimited", "enforce_rate_limits"]


async def enforce_rate_limits(request: Request, principal: CallerPrincipal) -> Admission:
    """FastAPI dependency: authenticate, then admit the request or raise 429/503.

    Routes merge ``Admission.headers`` into their response (FastAPI drops headers set on
    an injected ``Response`` when the route returns its own).
    """
    # The runtime straight from the app: a sync dependency would cost a thread hop.
    runtime: Runtime = request.app.state.aiservice
    limiter = runtime.limiter
    if limiter is None:
        return Admission({})  # shared state not started: no limits to apply
    return await limiter.admit(principal)


RateLimited = Annotated[Admission, Depends(enforce_rate_limits)]
