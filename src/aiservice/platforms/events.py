"""Non-HTTP work routed into the core: queue messages by ``kind`` and event actions.

A *message* is a JSON object with a ``kind`` (SQS record bodies on Lambda, Pub/Sub data on
GCP). Its handler is looked up in :data:`MESSAGE_HANDLERS` and awaited as
``handler(runtime, message)``; raising means the message failed and will be retried.

An *event action* (:data:`EVENT_ACTIONS`) runs for an EventBridge, SNS or S3 event that an
``aws_lambda.events`` entry matches: ``http`` sends a request to the app in-process,
``message`` hands a configured message to :data:`MESSAGE_HANDLERS`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..queues.base import MESSAGE_HANDLERS  # the queues' kind table: one for all consumers
from ..registry import Registry

if TYPE_CHECKING:
    from ..config import LambdaEventSettings

__all__ = [
    "EVENT_ACTIONS",
    "MESSAGE_HANDLERS",
    "ActionContext",
    "EventActionError",
    "MessageError",
    "dispatch_message",
    "parse_message",
]


class MessageError(ValueError):
    """A message that no handler can take (not JSON, no ``kind``, unknown ``kind``)."""


class EventActionError(RuntimeError):
    """An event action ran and failed; Lambda reports the invocation as failed."""


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """Decode a message body; the error names the problem, never the content."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError("message body is not JSON") from exc
    if not isinstance(message, dict):
        raise MessageError("message body is not a JSON object")
    return message


async def dispatch_message(runtime: Any, message: Mapping[str, Any]) -> None:
    """Run the handler registered for ``message["kind"]``."""
    kind = message.get("kind")
    if not isinstance(kind, str) or not kind:
        raise MessageError('message has no "kind" (a string naming its handler)')
    try:
        handler = MESSAGE_HANDLERS.get(kind)
    except LookupError as exc:
        raise MessageError(str(exc)) from exc
    await handler(runtime, dict(message))


RequestFn = Callable[[str, str, bytes, list[tuple[bytes, bytes]]], Awaitable[tuple[int, bytes]]]


class ActionContext(NamedTuple):
    """What an event action may use: the app (through ``request``) and its runtime."""

    runtime: Any
    request: RequestFn
    resolve: Callable[[str], Awaitable[str]]


EventAction = Callable[[ActionContext, "LambdaEventSettings", Mapping[str, Any]], Awaitable[Any]]

EVENT_ACTIONS: Registry[EventAction] = Registry("event action", group="aiservice.event_actions")
EVENT_ACTIONS.register("http", "aiservice.platforms.actions:http_action")
EVENT_ACTIONS.register("message", "aiservice.platforms.actions:message_action")
