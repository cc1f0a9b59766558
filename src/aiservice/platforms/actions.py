"""The built-in event actions (see :mod:`aiservice.platforms.events`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .events import ActionContext, EventActionError, dispatch_message

if TYPE_CHECKING:
    from ..config import LambdaEventSettings

__all__ = ["http_action", "message_action"]


async def http_action(
    ctx: ActionContext, config: LambdaEventSettings, event: Mapping[str, Any]
) -> dict[str, Any]:
    """Send ``method path`` with a JSON body to the app in-process, e.g. to run a flow.

    A 4xx/5xx answer raises so the scheduler (EventBridge retries, DLQ) sees a failure.
    """
    if not config.path:
        raise EventActionError("the http event action needs a 'path'")
    payload = event if config.body is None else config.body
    headers = [(b"content-type", b"application/json")]
    if config.api_key:
        token = await ctx.resolve(config.api_key)
        headers.append((b"authorization", f"Bearer {token}".encode()))
    body = json.dumps(payload).encode()
    status, answer = await ctx.request(config.method.upper(), config.path, body, headers)
    if status >= 400:
        snippet = answer[:300].decode("utf-8", "replace")
        raise EventActionError(
            f"{config.method.upper()} {config.path} answered {status}: {snippet}"
        )
    try:
        result: Any = json.loads(answer) if answer else None
    except ValueError:
        result = answer.decode("utf-8", "replace")
    return {"status": status, "body": result}


async def message_action(
    ctx: ActionContext, config: LambdaEventSettings, event: Mapping[str, Any]
) -> dict[str, Any]:
    """Hand ``config.message`` (plus the triggering event) to its message handler."""
    message = {**config.message, "event": dict(event)}
    await dispatch_message(ctx.runtime, message)
    return {"kind": message.get("kind")}
