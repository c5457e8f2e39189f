"""``aggregator``: collects message bodies and completes (or emits) on a threshold (§2.3).

Unlike the original, which de-duplicated by the body's ``agent_id`` and so dropped every
result after the first from the same executor, this aggregator counts every distinct
message and ignores only a *replayed* one (same ``message_id``).
"""

from __future__ import annotations

from typing import Any

from ..messages import Message
from .base import Agent

RESULT_HEADERS = {"schema_ref": "com.mirrorneuron.aggregator.result", "schema_version": "1.0.0"}


class AggregatorAgent(Agent):
    def __init__(self, node: Any, ctx: Any) -> None:
        super().__init__(node, ctx)
        config = self.config
        self.complete_on_message: bool = config.get("complete_on_message") is True
        after = config.get("complete_after")
        valid = isinstance(after, int) and not isinstance(after, bool) and after > 0
        self.complete_after: int | None = after if valid else None
        output = config.get("output_message_type")
        self.output_type: str | None = output if isinstance(output, str) and output else None
        default_complete = "output_message_type" not in config
        self.complete: bool = bool(config.get("complete_job", default_complete))
        self.messages: list[Any] = []
        self.ids: list[str] = []  # message id of each collected body, same order
        self.seen: set[str] = set()
        self._saved = 0  # how many collected messages the store already has

    def handle(self, message: Message) -> None:
        body = {} if message.body is None else message.body
        if message.message_id in self.seen:
            agent_id = body.get("agent_id") if isinstance(body, dict) else None
            self.ctx.event(
                "aggregator_duplicate_ignored", {"message_id": message.message_id, "agent_id": agent_id}
            )
            return
        self.seen.add(message.message_id)
        self.ids.append(message.message_id)
        self.messages.append(body)
        n = len(self.messages)
        self.ctx.event("aggregator_received", {"count": n})
        if not (self.complete_on_message or (self.complete_after is not None and n >= self.complete_after)):
            return
        result = {"messages": list(self.messages), "count": n, "last_message": body}
        if self.output_type is not None:
            self.ctx.emit(self.output_type, result, message, cls="event", headers=RESULT_HEADERS)
        if self.complete:
            self.ctx.complete_job(result)

    def waiting_for(self) -> str | None:
        if not self.complete and self.output_type is None:
            return None
        if self.complete_on_message:
            return "a message (complete_on_message)"
        if self.complete_after is not None:
            return f"{len(self.messages)} of complete_after={self.complete_after} message(s)"
        return None

    def snapshot_state(self) -> dict[str, Any]:
        # Collected messages live in the log (stored incrementally), not in every snapshot.
        return {
            "config": self.config,
            "count": len(self.messages),
            "complete_on_message": self.complete_on_message,
            "complete_after": self.complete_after,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        # Snapshots that carry the messages themselves are accepted too.
        if "messages" in state:
            self.restore_log(
                [{"id": i, "body": b} for i, b in zip(state.get("seen_message_ids", []), state["messages"])]
            )

    def log_entries(self) -> list[Any]:
        return [{"id": i, "body": b} for i, b in zip(self.ids, self.messages)]

    def unsaved_log(self) -> list[tuple[int, Any]]:
        start, self._saved = self._saved, len(self.messages)
        return [
            (pos + 1, {"id": self.ids[pos], "body": self.messages[pos]}) for pos in range(start, self._saved)
        ]

    def restore_log(self, entries: list[Any]) -> None:
        self.ids = [e["id"] for e in entries]
        self.messages = [e["body"] for e in entries]
        self.seen = set(self.ids)
        self._saved = len(entries)

    def inspect_state(self) -> dict[str, Any]:
        # Light on purpose: this view is persisted on every flush while the agent is busy.
        return {
            "count": len(self.messages),
            "complete_on_message": self.complete_on_message,
            "complete_after": self.complete_after,
            "output_message_type": self.output_type,
        }
