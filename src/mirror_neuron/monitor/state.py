"""A job as a monitor shows it, folded from its record, graph, agents and live updates.

Pure data and arithmetic, no I/O and no drawing: ``mn job watch`` (Rich) and ``mn monitor``
(Textual) draw the same :class:`JobView`, and tests drive it with recorded updates.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .._time import epoch

#: Events kept for the event log (older ones are dropped from the view, never from the store).
EVENT_LOG = 2000
#: Job events that change the job's status.
STATUS_EVENTS = {
    "job_running": "running",
    "job_paused": "paused",
    "job_resumed": "running",
    "job_completed": "completed",
    "job_failed": "failed",
    "job_cancelled": "cancelled",
}
TERMINAL = frozenset({"completed", "failed", "cancelled"})
#: Events that are noise in a summary line ("last event").
QUIET = frozenset({"agent_message_received", "job_heartbeat"})


@dataclass
class AgentRow:
    """One agent's line: what the graph says it is and what the last status said it does."""

    agent_id: str
    agent_type: str = "?"
    kind: str = "?"
    status: str = "initializing"
    mailbox_depth: int = 0
    processed: int = 0
    last_error: str | None = None

    def apply(self, status: dict[str, Any]) -> None:
        self.status = str(status.get("status", self.status))
        self.mailbox_depth = int(status.get("mailbox_depth") or 0)
        self.processed = int(status.get("processed", status.get("processed_messages")) or 0)
        self.last_error = status.get("last_error")


def _searchable(event: dict[str, Any]) -> str:
    return f"{event.get('type', '')} {event.get('agent_id', '')}".lower()


@dataclass
class JobView:
    """What a monitor knows of one job; :meth:`apply` each update as it arrives."""

    job_id: str
    record: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] | None = None
    agents: dict[str, AgentRow] = field(default_factory=dict)
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EVENT_LOG))
    last_seq: int = 0
    event_count: int = 0
    last_event: dict[str, Any] | None = None
    ended: bool = False

    @classmethod
    def start(
        cls,
        record: dict[str, Any],
        graph: dict[str, Any] | None = None,
        agents: list[dict[str, Any]] | None = None,
    ) -> JobView:
        """A view from the job's record, graph and agent views (as the sources return them)."""
        view = cls(str(record.get("job_id")), dict(record), graph)
        for node in (graph or {}).get("nodes", []):
            view.agents[node["id"]] = AgentRow(node["id"], node.get("agent_type", "?"), node.get("kind", "?"))
        for agent in agents or []:
            row = view.agents.setdefault(str(agent.get("agent_id")), AgentRow(str(agent.get("agent_id"))))
            row.agent_type = str(agent.get("agent_type") or row.agent_type)
            row.apply(agent)
        view.ended = view.status in TERMINAL
        return view

    # -- updates --------------------------------------------------------------------

    def apply(self, kind: str, data: Any) -> None:
        """Fold one :data:`~.source.Update` in."""
        if kind == "event":
            self.add_event(data)
        elif kind == "agents":
            for status in data:
                agent_id = str(status.get("agent_id"))
                self.agents.setdefault(agent_id, AgentRow(agent_id)).apply(status)
        elif kind == "end":
            self.ended = True
            if data.get("status"):
                self.record["status"] = data["status"]

    def add_event(self, event: dict[str, Any]) -> None:
        seq = int(event.get("seq") or 0)
        if seq and seq <= self.last_seq:
            return  # a reconnect can repeat what was seen
        self.last_seq = max(self.last_seq, seq)
        self.event_count += 1
        self.events.append(event)
        kind = str(event.get("type"))
        if kind not in QUIET:
            self.last_event = event
        status = STATUS_EVENTS.get(kind)
        if status is not None and self.record.get("status") not in TERMINAL:
            self.record["status"] = status
            self.record["updated_at"] = event.get("timestamp")
            if kind == "job_failed":
                self.record["result"] = {"agent_id": event.get("agent_id"), "error": event.get("reason")}

    # -- what screens show ----------------------------------------------------------

    @property
    def status(self) -> str:
        return str(self.record.get("status", "?"))

    def counts(self) -> Counter[str]:
        """Agents by state."""
        return Counter(row.status for row in self.agents.values())

    def processed(self) -> int:
        return sum(row.processed for row in self.agents.values())

    def queued(self) -> int:
        return sum(row.mailbox_depth for row in self.agents.values())

    def failures(self) -> list[AgentRow]:
        """Agents that failed or hold an error, failed ones first."""
        rows = [row for row in self.agents.values() if row.status == "failed" or row.last_error]
        return sorted(rows, key=lambda row: (row.status != "failed", row.agent_id))

    def failure_reason(self) -> str | None:
        """Why the job failed (``agent: error``), or ``None``."""
        if self.status != "failed":
            return None
        result = self.record.get("result")
        if isinstance(result, dict) and result.get("error"):
            agent = result.get("agent_id")
            return f"{agent}: {result['error']}" if agent else str(result["error"])
        return str(self.record.get("error") or "failed")

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds from submission to the end (or to now, for a live job)."""
        start = epoch(self.record.get("submitted_at"))
        if start is None:
            return None
        end = epoch(self.record.get("updated_at")) if self.ended or self.status in TERMINAL else None
        return max(0.0, (end if end is not None else now or time.time()) - start)

    def events_matching(self, text: str = "", *, limit: int | None = None) -> list[dict[str, Any]]:
        """The kept events whose type or agent contains ``text`` (all when empty), oldest first."""
        needle = text.lower()
        found = [e for e in self.events if not needle or needle in _searchable(e)]
        return found if limit is None else found[-limit:]
