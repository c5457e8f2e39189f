"""What a job does when an agent's handler crashes: its ``recovery_mode``."""

from __future__ import annotations

from typing import Any, Protocol

from ..agents import create_agent
from ..bundle.model import Manifest
from ..messages import Message
from ..states import JobStatus
from .cell import AgentCell

DEFAULT_RESTARTS = 3


class CrashedJob(Protocol):
    """The job of the crashed agent (:class:`~.job.JobRun` is one)."""

    manifest: Manifest
    status: JobStatus

    def event(
        self, type: str, agent_id: str | None = None, payload: Any = None, extra: dict[str, Any] | None = None
    ) -> None: ...

    def pause(self) -> int: ...


def restart_limit(policies: dict[str, Any]) -> int:
    """``max_agent_restart_attempts`` when it is a whole number ≥ 0, else the default (3)."""
    value = policies.get("max_agent_restart_attempts", DEFAULT_RESTARTS)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else DEFAULT_RESTARTS
    )


def handle_crash(job: CrashedJob, cell: AgentCell, error: str, message: Message) -> bool:
    """Apply the job's ``recovery_mode`` to an agent whose handler crashed.

    ``local_restart``: rebuild the agent from its state and hand it the message again, at
    most ``max_agent_restart_attempts`` times. ``manual_recover``: put the message back and
    pause the job for an operator. Returns False when the job must fail instead.
    """
    mode = job.manifest.recovery_mode
    if mode == "manual_recover":
        cell.requeue(message, error)
        job.event("agent_crashed", cell.agent_id, {"error": error, "recovery_mode": mode})
        if job.status is JobStatus.RUNNING:
            job.pause()
        return True
    limit = restart_limit(job.manifest.policies)
    if cell.restarts >= limit:
        cell.last_error = f"agent {cell.agent_id} exceeded restart attempts ({limit}): {error}"
        return False
    job.event("agent_recovery_started", cell.agent_id, None, {"attempt": cell.restarts + 1, "error": error})
    cell.replace_agent(create_agent(cell.node, cell))
    cell.requeue(message)
    job.event("agent_recovered", cell.agent_id, None, {"attempt": cell.restarts})
    return True
