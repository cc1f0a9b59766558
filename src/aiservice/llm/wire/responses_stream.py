"""Chat completion chunks as the Responses API's streamed events, without I/O.

:class:`ResponseEvents` is fed the gateway's ``chat.completion.chunk`` dicts and returns the
events the official SDKs expect, each with its ``sequence_number``::

    response.created, response.in_progress
    response.output_item.added                  (a message item)
      response.content_part.added               (its output_text part)
      response.output_text.delta ...
      response.output_text.done, response.content_part.done
    response.output_item.done
    response.output_item.added                  (a function_call item, per tool call)
      response.function_call_arguments.delta ...
      response.function_call_arguments.done
    response.output_item.done
    response.completed                          (or response.incomplete; usage included)

A failure midway ends the stream with ``response.failed`` carrying the error and the
output so far. Item ids are stable from ``added`` to ``done`` to the final response, which
the SDKs' stream accumulators check.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .responses_output import (
    Item,
    NewId,
    finish_status,
    output_text_part,
    response_object,
    response_usage,
)

__all__ = ["ResponseEvents"]

Event = dict[str, Any]


class ResponseEvents:
    """The event sequence of one streamed response."""

    def __init__(
        self, body: Mapping[str, Any], *, id_: str, model: str, created_at: int, new_id: NewId
    ) -> None:
        self.body, self.id, self.model, self.created_at = body, id_, model, created_at
        self.new_id = new_id
        self.items: list[Item] = []
        self.response: dict[str, Any] | None = None
        """The final response object, once :meth:`finish` or :meth:`fail` ran."""
        self._seq = 0
        self._index: dict[str, int] = {}
        self._text: Item | None = None
        self._calls: dict[int, Item] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def _event(self, type_: str, **fields: Any) -> Event:
        event = {"type": type_, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(
            self.body,
            id_=self.id,
            model=self.model,
            created_at=self.created_at,
            status=status,
            output=copy.deepcopy(self.items),
            **fields,
        )

    def start(self) -> list[Event]:
        response = self._snapshot("in_progress")
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=copy.deepcopy(response)),
        ]

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        """The events of one chat chunk (none for the usage chunk, kept for the end)."""
        if chunk.get("usage"):
            self._usage = dict(chunk["usage"])
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is not a Responses API notion: the first choice answers
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text_delta(str(delta["content"]))
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def _add(self, item: Item) -> tuple[int, Event]:
        index = len(self.items)
        self.items.append(item)
        self._index[item["id"]] = index
        return index, self._event(
            "response.output_item.added", output_index=index, item=copy.deepcopy(item)
        )

    def _text_delta(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._text is None:
            events += self._close_calls()
            item: Item = {
                "type": "message",
                "id": self.new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            index, added = self._add(item)
            part = output_text_part("")
            item["content"].append(part)
            events += [
                added,
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                ),
            ]
            self._text = item
        item = self._text
        item["content"][0]["text"] += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=self._index[item["id"]],
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call_delta(self, call: Mapping[str, Any]) -> list[Event]:
        events: list[Event] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            events += self._close_text()
            item = {
                "type": "function_call",
                "id": self.new_id("fc"),
                "call_id": call.get("id") or self.new_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            events.append(self._add(item)[1])
            self._calls[position] = item
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index[item["id"]],
                    delta=function["arguments"],
                )
            )
        return events

    def _close_text(self, status: str = "completed") -> list[Event]:
        item, self._text = self._text, None
        if item is None:
            return []
        index, part = self._index[item["id"]], item["content"][0]
        item["status"] = status
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            self._event("response.output_text.done", **where, text=part["text"], logprobs=[]),
            self._event("response.content_part.done", **where, part=dict(part)),
            self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)),
        ]

    def _close_calls(self) -> list[Event]:
        events: list[Event] = []
        for item in self._calls.values():
            if item["status"] != "in_progress":
                continue
            index = self._index[item["id"]]
            item["status"] = "completed"
            events += [
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                ),
                self._event(
                    "response.output_item.done", output_index=index, item=copy.deepcopy(item)
                ),
            ]
        return events

    def finish(self) -> list[Event]:
        """The closing events, ending with ``response.completed`` (or ``.incomplete``)."""
        status, incomplete = finish_status(self._finish)
        events: list[Event] = []
        if not self.items:  # an empty answer is still one (empty) message, as unstreamed
            events += self._text_delta("")
        events += self._close_text(status) + self._close_calls()
        self.response = self._snapshot(
            status, usage=response_usage(self._usage), incomplete=incomplete
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=self.response)]

    def fail(self, code: str | None, message: str) -> list[Event]:
        """``response.failed`` with the error and what was produced before it."""
        for item in self.items:
            if item["status"] == "in_progress":
                item["status"] = "incomplete"
        # The SDKs type ``error.code`` as OpenAI's own list: ours goes into the message.
        known = code if code == "rate_limit_exceeded" else "server_error"
        error = {"code": known, "message": f"{message} ({code})" if code else message}
        self.response = self._snapshot("failed", error=error, usage=response_usage(self._usage))
        return [self._event("response.failed", response=self.response)]
