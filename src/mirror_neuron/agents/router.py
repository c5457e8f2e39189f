"""``router``: forwards each message, optionally under a new type (§2.2)."""

from __future__ import annotations

from typing import Any

from ..messages import Message
from .base import Agent


class RouterAgent(Agent):
    """Re-emits the body unchanged under ``config.emit_type`` (default: the incoming type)."""

    def __init__(self, node: Any, ctx: Any) -> None:
        super().__init__(node, ctx)
        emit_type = self.config.get("emit_type")
        self.emit_type: str | None = emit_type if isinstance(emit_type, str) and emit_type else None
        self.forwarded = 0

    def handle(self, message: Message) -> None:
        self.forwarded += 1
        self.ctx.emit(self.emit_type or message.type, message.body, message)

    def snapshot_state(self) -> dict[str, Any]:
        return {"node_id": self.node.node_id, "forwarded": self.forwarded, "config": self.config}

    def restore_state(self, state: dict[str, Any]) -> None:
        self.forwarded = int(state.get("forwarded", 0))
