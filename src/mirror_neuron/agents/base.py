"""What an agent is, and what it may ask of the runtime.

An agent handles one message at a time. Built-in agents whose work is pure computation
(router, aggregator, sensor) implement the synchronous :meth:`Agent.handle`, which the
scheduler calls inline: no task, no await, no copy. Agents that wait on the outside
world (executors) set ``is_async = True`` and implement :meth:`Agent.handle_async`.

Agents act through their :class:`AgentContext`: ``emit`` (along matching edges),
``emit_to`` (directly to a node), ``event`` and ``complete_job``. Actions take effect
in the order they are called, which is the order the original applies its action list.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import MirrorNeuronError

if TYPE_CHECKING:
    from ..bundle.model import Node
    from ..config import Config
    from ..messages import Message


class AgentError(MirrorNeuronError):
    """An agent could not handle a message; the job fails with this error.

    ``details`` is structured, JSON-safe information kept in the job result next to the
    readable ``message`` (e.g. an executor's exit code and the tail of its stderr).
    """

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class AgentContext(Protocol):
    """The runtime services an agent may use. Implemented by the runtime's agent cell."""

    job_id: str
    agent_id: str
    node: Node
    config: Config
    #: Runtime-wide services (executor lease manager, …) keyed by name.
    services: dict[str, Any]

    @property
    def invocation(self) -> int:
        """1-based number of the message being handled."""

    @property
    def bundle_root(self) -> Path | None:
        """The absolute bundle root (``None`` for dict manifests)."""

    @property
    def payloads_path(self) -> Path | None:
        """The bundle's ``payloads/`` directory (``None`` for dict manifests)."""

    def emit(self, type: str, body: Any, incoming: Message | None, **opts: Any) -> int:
        """Send a copy along every outbound edge matching ``type`` (or ``*``); returns the count."""

    def emit_to(self, node_id: str, type: str, body: Any, incoming: Message | None, **opts: Any) -> None:
        """Deliver directly to ``node_id``, ignoring edges."""

    def event(self, type: str, payload: Any = None) -> None:
        """Record a job event attributed to this agent."""

    def complete_job(self, result: Any) -> None:
        """Complete the job with ``result`` (the first completion wins)."""


class Agent:
    """Base class of every agent implementation."""

    #: True for agents whose handler awaits (they run as a task per activation).
    is_async: ClassVar[bool] = False

    def __init__(self, node: Node, ctx: AgentContext) -> None:
        self.node = node
        self.ctx = ctx
        self.config: dict[str, Any] = node.config

    def handle(self, message: Message) -> None:
        """Handle one message synchronously (non-async agents)."""
        raise NotImplementedError

    async def handle_async(self, message: Message) -> None:
        """Handle one message (async agents)."""
        self.handle(message)

    def snapshot_state(self) -> dict[str, Any]:
        """JSON-safe state to persist; :meth:`restore_state` must accept it."""
        return {}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`snapshot_state` output."""

    def inspect_state(self) -> dict[str, Any]:
        """The view shown by ``inspect_agents`` as ``current_state``."""
        return self.snapshot_state()

    def waiting_for(self) -> str | None:
        """What this agent still needs before it ends the job, in words, e.g.
        ``"1 of complete_after=2"``; ``None`` for an agent that never ends a job.

        Shown when a job stalls (``job_stalled``), so an operator sees what is missing.
        """
        return None

    # An agent whose state grows without bound (an aggregator's collected messages) keeps
    # that part in an append-only log, stored incrementally instead of in every snapshot.

    def log_entries(self) -> list[Any]:
        """The whole log (JSON-safe entries, oldest first)."""
        return []

    def unsaved_log(self) -> list[tuple[int, Any]]:
        """``(position, entry)`` for entries appended since the last call; they count as saved."""
        return []

    def restore_log(self, entries: list[Any]) -> None:
        """Restore the log from :meth:`log_entries` (after :meth:`restore_state`)."""

    async def stop(self) -> None:
        """Release what the agent holds (kill child processes, …). Must be idempotent."""
