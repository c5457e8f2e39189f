"""``sensor``: observes messages and re-emits them as events (§2.4)."""

from __future__ import annotations

from typing import Any

from ..messages import Message
from .base import Agent


class SensorAgent(Agent):
    """Counts observations, emits each as ``output_message_type`` and may complete the job."""

    def __init__(self, node: Any, ctx: Any) -> None:
        super().__init__(node, ctx)
        output = self.config.get("output_message_type", "sensor_ready")
        self.output_type: str = output if isinstance(output, str) and output else "sensor_ready"
        after = self.config.get("complete_after", 1)
        self.complete_after: int = after if isinstance(after, int) and not isinstance(after, bool) else 1
        self.complete: bool = self.config.get("complete_job") is True
        self.observations = 0

    def handle(self, message: Message) -> None:
        self.observations += 1
        n = self.observations
        self.ctx.event("sensor_observed", {"count": n})
        self.ctx.emit(self.output_type, message.body, message, cls="event")
        if self.complete and n >= self.complete_after:
            self.ctx.complete_job({"count": n, "last_message": message.body})

    def waiting_for(self) -> str | None:
        if not self.complete:
            return None
        return f"{self.observations} of complete_after={self.complete_after} observation(s)"

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "observations": self.observations,
            "complete_after": self.complete_after,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        self.observations = int(state.get("observations", 0))
