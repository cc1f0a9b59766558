"""Non-HTTP Lambda events: SQS batches, EventBridge (and schedules), SNS and S3 records.

Each kind is an entry of :data:`EVENT_KINDS` (tried in order after the HTTP translators):
a predicate on the raw event and a coroutine that handles it. SQS records are queue
messages routed by ``kind`` (:func:`~aiservice.platforms.events.dispatch_message`);
EventBridge, SNS and S3 events run the first matching ``aws_lambda.events`` action.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..observability.context import bind
from .events import EVENT_ACTIONS, ActionContext, dispatch_message, parse_message

if TYPE_CHECKING:
    from ..config import LambdaEventSettings

__all__ = ["EVENT_KINDS", "EventKind", "UnhandledEventError", "describe_event", "match"]

log = logging.getLogger("aiservice.platforms")


class UnhandledEventError(RuntimeError):
    """No translator, queue handler or configured action takes this event."""


class EventKind(NamedTuple):
    name: str
    matches: Callable[[Mapping[str, Any]], bool]
    handle: Callable[
        [ActionContext, Mapping[str, Any], Mapping[str, LambdaEventSettings]], Awaitable[Any]
    ]


def _records_from(source: str) -> Callable[[Mapping[str, Any]], bool]:
    def matches(event: Mapping[str, Any]) -> bool:
        records = event.get("Records")
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            return False
        first = records[0]
        return (first.get("eventSource") or first.get("EventSource")) == source

    return matches


def _is_eventbridge(event: Mapping[str, Any]) -> bool:
    return "detail-type" in event and "source" in event and "detail" in event


def lookup(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; ``None`` when a part is missing."""
    for part in dotted.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def match(obj: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    return all(str(lookup(obj, key)) == value for key, value in wanted.items())


def describe_event(event: Any) -> dict[str, Any]:
    """Shape of an event for logs: keys and source names, never values."""
    if not isinstance(event, Mapping):
        return {"event_type": type(event).__name__}
    info: dict[str, Any] = {"event_keys": sorted(str(k) for k in event)[:20]}
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        info["record_source"] = records[0].get("eventSource") or records[0].get("EventSource")
    if "source" in event:
        info["event_source"] = str(event["source"])
    return info


def unhandled(event: Any, reason: str) -> UnhandledEventError:
    """Log one structured error and build the exception the invocation fails with."""
    log.error("unhandled Lambda event: %s", reason, extra=describe_event(event))
    return UnhandledEventError(
        f"aiservice cannot handle this Lambda event: {reason}. HTTP events come from API "
        "Gateway (REST or HTTP API), ALB, Function URLs, VPC Lattice or Lambda@Edge "
        "(CloudFront); SQS message bodies need a registered "
        '"kind"; EventBridge, SNS and S3 events need a matching entry in aws_lambda.events.'
    )


async def _run_action(
    ctx: ActionContext, name: str, config: LambdaEventSettings, payload: Mapping[str, Any]
) -> Any:
    action = EVENT_ACTIONS.get(config.action)
    with bind(event_action=name):
        log.info("running event action %s (%s)", name, config.action)
        return await action(ctx, config, payload)


def _first_action(
    actions: Mapping[str, LambdaEventSettings], trigger: str, payload: Mapping[str, Any]
) -> tuple[str, LambdaEventSettings] | None:
    for name, config in actions.items():
        if config.trigger != trigger or not match(payload, config.match):
            continue
        # A rendered schedule names its entry in the event (see deploy/aws.py).
        if config.schedule and lookup(payload, "detail.schedule") != name:
            continue
        return name, config
    return None


async def handle_eventbridge(
    ctx: ActionContext, event: Mapping[str, Any], actions: Mapping[str, LambdaEventSettings]
) -> Any:
    found = _first_action(actions, "eventbridge", event)
    if found is None:
        raise unhandled(event, f"no aws_lambda.events entry matches {event.get('detail-type')!r}")
    return {"action": found[0], "result": await _run_action(ctx, *found, event)}


def _records_handler(trigger: str) -> Callable[..., Awaitable[Any]]:
    async def handle(
        ctx: ActionContext, event: Mapping[str, Any], actions: Mapping[str, LambdaEventSettings]
    ) -> Any:
        plan = [(record, _first_action(actions, trigger, record)) for record in event["Records"]]
        if any(found is None for _, found in plan):
            raise unhandled(event, f"no aws_lambda.events entry matches a {trigger} record")
        results = []
        for record, found in plan:
            assert found is not None
            results.append({"action": found[0], "result": await _run_action(ctx, *found, record)})
        return {"results": results}

    return handle


async def handle_sqs(
    ctx: ActionContext, event: Mapping[str, Any], actions: Mapping[str, LambdaEventSettings]
) -> dict[str, Any]:
    """Each record body is a message; failures are reported, not raised (partial batch).

    On a FIFO queue the records after a failure are reported too, so SQS keeps the order.
    """
    failed: list[str] = []
    for record in event["Records"]:
        message_id = record.get("messageId", "")
        if failed and str(record.get("eventSourceARN", "")).endswith(".fifo"):
            failed.append(message_id)
            continue
        with bind(message_id=message_id):
            try:
                message = parse_message(record.get("body") or "")
                _count_redelivery(record, message)
                await dispatch_message(ctx.runtime, message)
            except Exception as exc:  # one bad message must not fail the batch
                log.error("queue message failed: %s: %s", type(exc).__name__, exc)
                failed.append(message_id)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}


def _count_redelivery(record: Mapping[str, Any], message: Mapping[str, Any]) -> None:
    """A queue message SQS delivers again (its worker failed or died) is counted."""
    from ..queues.base import MESSAGE_HANDLERS, REDELIVERIES

    received = str(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    kind = message.get("kind")
    routed = isinstance(kind, str) and kind in MESSAGE_HANDLERS
    if routed and received.isdigit() and int(received) > 1:
        REDELIVERIES.labels("sqs").inc()


EVENT_KINDS: list[EventKind] = [
    EventKind("sqs", _records_from("aws:sqs"), handle_sqs),
    EventKind("sns", _records_from("aws:sns"), _records_handler("sns")),
    EventKind("s3", _records_from("aws:s3"), _records_handler("s3")),
    EventKind("eventbridge", _is_eventbridge, handle_eventbridge),
]
