"""Job and agent lifecycle states, and the one table of the moves between them.

The values are the strings the original stores and every reader (CLI, REST, stores)
compares against, so a state is written as ``state.value`` and read with ``JobStatus(text)``.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import JobStateError


class JobStatus(StrEnum):
    """``pending → running ⇄ paused → completed | failed | cancelled``; live jobs may be suspended."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    #: Stopped at a message boundary by its runtime (exit, Ctrl-C, SIGTERM) without ending:
    #: ``mn job recover`` resumes it.
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


class AgentStatus(StrEnum):
    """An agent's state inside a hosted job (agent-runtime-design §6.2)."""

    INITIALIZING = "initializing"
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    #: Still unwinding a handler (an executor's script) after its job ended.
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_AGENT_STATES


TERMINAL_JOB_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE_JOB_STATES = frozenset(set(JobStatus) - TERMINAL_JOB_STATES)
TERMINAL_AGENT_STATES = frozenset(
    {AgentStatus.COMPLETED, AgentStatus.FAILED, AgentStatus.CANCELLED, AgentStatus.STOPPED}
)

_ENDS = TERMINAL_JOB_STATES
#: Every legal job move; anything else is a runtime bug or an operator asking too late.
JOB_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    # A job recovered while paused goes from pending straight back to paused.
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.SUSPENDED, *_ENDS}),
    JobStatus.RUNNING: frozenset({JobStatus.PAUSED, JobStatus.SUSPENDED, *_ENDS}),
    JobStatus.PAUSED: frozenset({JobStatus.RUNNING, JobStatus.SUSPENDED, *_ENDS}),
    # Recovery resumes a suspended job where it was (running or paused), or finds it must fail.
    JobStatus.SUSPENDED: frozenset({JobStatus.RUNNING, JobStatus.PAUSED, *_ENDS}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

_AGENT_ENDS = TERMINAL_AGENT_STATES | {AgentStatus.STOPPING}
#: Every legal agent move (an agent may also stay where it is).
AGENT_MOVES: dict[AgentStatus, frozenset[AgentStatus]] = {
    AgentStatus.INITIALIZING: frozenset({AgentStatus.IDLE, AgentStatus.PAUSED, *_AGENT_ENDS}),
    AgentStatus.IDLE: frozenset({AgentStatus.RUNNING, AgentStatus.PAUSED, *_AGENT_ENDS}),
    AgentStatus.RUNNING: frozenset({AgentStatus.IDLE, AgentStatus.PAUSED, *_AGENT_ENDS}),
    AgentStatus.PAUSED: frozenset({AgentStatus.IDLE, AgentStatus.RUNNING, *_AGENT_ENDS}),
    AgentStatus.STOPPING: frozenset(TERMINAL_AGENT_STATES),
    AgentStatus.COMPLETED: frozenset(),
    AgentStatus.FAILED: frozenset(),
    AgentStatus.CANCELLED: frozenset(),
    AgentStatus.STOPPED: frozenset(),
}


def job_move(job_id: str, current: JobStatus, target: JobStatus) -> JobStatus:
    """``target`` if the table allows moving there from ``current``.

    Raises:
        JobStateError: naming both states, e.g. resuming a job that is not paused.
    """
    if target not in JOB_MOVES[current]:
        raise JobStateError(job_id, f"job {job_id} cannot go from {current.value} to {target.value}")
    return target


def agent_move(current: AgentStatus, target: AgentStatus) -> AgentStatus:
    """``target`` if an agent may move there from ``current`` (or stay); else ``current``.

    Agents are moved by the runtime alone, so an illegal move is not an error to report: a
    terminal agent simply stays terminal (a late wake-up never revives it).
    """
    if target is current or target in AGENT_MOVES[current]:
        return target
    return current


def final_agent_status(job_status: str) -> AgentStatus:
    """What a live agent of an ended job became: cancelled with its job, else stopped."""
    return AgentStatus.CANCELLED if job_status == JobStatus.CANCELLED else AgentStatus.STOPPED
