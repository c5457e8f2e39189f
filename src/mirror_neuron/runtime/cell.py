"""An agent cell: one agent's mailbox, lifecycle status and view of the runtime.

The cell is what the scheduler runs. It owns the FIFO mailbox, processes one message
at a time, and implements :class:`~mirror_neuron.agents.base.AgentContext` so the agent
can emit, record events and complete the job. Idle cells cost a few hundred bytes and
no task: a cell is only on the run queue while it has mail.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .._time import now_iso
from ..agents.base import Agent, AgentError
from ..messages import Message
from ..store.base import WriteBatch

if TYPE_CHECKING:
    from pathlib import Path

    from ..bundle.model import Node
    from ..config import Config
    from .job import JobRun

# Agent lifecycle states (agent-runtime-design §6.2).
INITIALIZING = "initializing"
IDLE = "idle"
RUNNING = "running"
PAUSED = "paused"
STOPPING = "stopping"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STOPPED = "stopped"
TERMINAL_AGENT_STATES = frozenset({COMPLETED, FAILED, CANCELLED, STOPPED})
#: Shared stand-in for the mailbox of an agent that never received anything.
NO_MAIL: tuple[()] = ()


def log_key(agent_id: str) -> str:
    """Where an agent's log is stored: beside the mailboxes, under a key no mailbox uses."""
    return f"#log:{agent_id}"


class AgentCell:
    """Hosts one agent of a running job."""

    __slots__ = (
        "_route_cache",
        "agent",
        "agent_id",
        "appended",
        "blocked",
        "config",
        "current",
        "dirty",
        "emitted",
        "invocation",
        "job",
        "job_id",
        "last_error",
        "log_backlog",
        "mailbox",
        "max_queue",
        "node",
        "out_edges",
        "paused",
        "persisted",
        "processed",
        "pruned",
        "restarts",
        "scheduled",
        "services",
        "status",
        "taken",
        "task",
        "waiters",
    )

    def __init__(self, job: JobRun, node: Node) -> None:
        self.job = job
        self.job_id = job.job_id
        self.node = node
        self.agent_id = node.node_id
        self.config: Config = job.runtime.config
        self.services: dict[str, Any] = job.runtime.services
        # An empty deque costs ~600 bytes; most agents of a large job are idle, so the
        # mailbox is created on first delivery (see JobRun.deliver).
        self.mailbox: deque[Message] = NO_MAIL  # type: ignore[assignment]
        self.status = INITIALIZING
        self.paused = False
        #: Set while a mailbox this agent emitted into is over its bound (backpressure).
        self.blocked = False
        #: Senders blocked on this agent's full mailbox, woken when it drains.
        self.waiters: list[AgentCell] | None = None
        bound = node.config.get("max_queue_size")
        valid = isinstance(bound, int) and not isinstance(bound, bool) and bound > 0
        self.max_queue: int = bound if valid else self.config.max_queue_size  # type: ignore[assignment]
        self.scheduled = False
        self.dirty = True
        self.processed = 0
        self.invocation = 0
        #: Emits made while handling the current message (the index in deterministic ids).
        self.emitted = 0
        # Mailbox positions (1-based, per agent): ``appended`` ever queued, ``taken`` popped
        # (processed or in flight), ``persisted`` durable in the store (or derivable from
        # the manifest, as initial inputs are), ``pruned`` reported consumed to the store.
        self.appended = 0
        self.taken = 0
        self.persisted = 0
        self.pruned = 0
        self.restarts = 0
        #: Log rows taken from a replaced agent (restart in place) and not yet stored.
        self.log_backlog: list[tuple[str, int, dict[str, Any]]] = []
        self.current: Message | None = None
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.out_edges: tuple[tuple[str, str], ...] = ()  # (message_type, to_node)
        self._route_cache: dict[str, tuple[AgentCell, ...]] = {}
        self.agent: Agent = None  # type: ignore[assignment]  # set by JobRun after init

    # -- AgentContext ------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.agent_id

    @property
    def bundle_root(self) -> Path | None:
        return self.job.bundle.root_path

    @property
    def payloads_path(self) -> Path | None:
        return self.job.bundle.payloads_path

    def targets(self, message_type: str) -> tuple[AgentCell, ...]:
        """Cells reached by an emit of ``message_type``, in edge order (cached)."""
        hit = self._route_cache.get(message_type)
        if hit is None:
            cells = self.job.cells
            hit = tuple(cells[to] for mtype, to in self.out_edges if mtype == message_type or mtype == "*")
            self._route_cache[message_type] = hit
        return hit

    def emit(self, type: str, body: Any, incoming: Message | None, **opts: Any) -> int:
        targets = self._route_cache.get(type)
        if targets is None:
            targets = self.targets(type)
        if not targets:
            return 0
        job = self.job
        if job.terminal:
            return 0
        deliver = job.deliver
        me = self.agent_id
        inv = self.invocation
        k = self.emitted
        if incoming is None:
            incoming = Message(type, None, job_id=self.job_id, sender=me)
        if opts:
            for target in targets:
                deliver(
                    target,
                    incoming.derive(me, target.agent_id, type, body, message_id=(me, inv, k), **opts),
                    self,
                )
                k += 1
        else:
            child = incoming.child
            for target in targets:
                deliver(target, child(me, target.agent_id, type, body, (me, inv, k)), self)
                k += 1
        self.emitted = k
        return len(targets)

    def emit_to(self, node_id: str, type: str, body: Any, incoming: Message | None, **opts: Any) -> None:
        if self.job.terminal:
            return
        target = self.job.cells.get(node_id)
        if incoming is None:
            incoming = Message(type, None, job_id=self.job_id, sender=self.agent_id)
        k = self.emitted
        self.emitted = k + 1
        message = incoming.derive(
            self.agent_id, node_id, type, body, message_id=(self.agent_id, self.invocation, k), **opts
        )
        if target is None:
            self.job.dead_letter(node_id, message, f"agent {node_id} is not part of job {self.job_id}")
            return
        self.job.deliver(target, message, self)

    def event(self, type: str, payload: Any = None) -> None:
        self.job.event(type, self.agent_id, payload)

    def complete_job(self, result: Any) -> None:
        self.job.complete(self.agent_id, result)

    async def save_run(self, run: dict[str, Any]) -> None:
        """Store an executor's finished run durably, before its output is emitted."""
        store = self.job.runtime.store
        batch = WriteBatch(blobs={self.job_id: {f"run:{self.agent_id}": run}})
        await self.job.runtime.writer.run_blocking(store.write_batch, batch)

    async def saved_run(self) -> dict[str, Any] | None:
        """The last stored run of this agent; looked up only for a recovered job."""
        if not self.job.recovered:
            return None
        rt = self.job.runtime
        return await rt._read(rt.store.get_blob, self.job_id, f"run:{self.agent_id}")

    # -- processing --------------------------------------------------------------

    @property
    def runnable(self) -> bool:
        return not self.paused and not self.blocked and self.status not in TERMINAL_AGENT_STATES

    def run_slice(self, limit: int) -> int:
        """Process up to ``limit`` messages (sync agents) or start the async drain task."""
        if self.agent.is_async:
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self._drain_async())
            return 1
        mailbox = self.mailbox
        job = self.job
        handle = self.agent.handle
        received = job.received
        n = 0
        self.status = RUNNING
        while mailbox and n < limit:
            message = mailbox.popleft()
            self.taken += 1
            self.invocation = self.processed + 1
            self.emitted = 0
            received(self, message)
            try:
                handle(message)
            except Exception as exc:
                self._failed(exc, message)
                self._after_slice()  # a restarted agent goes back on the run queue
                return n + 1
            self.processed += 1
            n += 1
            if job.terminal or self.paused or self.blocked:
                break
        self.dirty = True
        job.runtime.writer.mark(job)
        if self.waiters is not None:
            self.wake_waiters()
        self._after_slice()
        return n

    def _after_slice(self) -> None:
        if self.status in TERMINAL_AGENT_STATES:
            self.scheduled = False
            return
        if self.mailbox and not self.paused and not self.blocked and not self.job.terminal:
            self.job.runtime.scheduler.ready(self)
        else:
            self.scheduled = False
            self.status = PAUSED if self.paused else IDLE

    def wake_waiters(self) -> None:
        """Release senders blocked on this mailbox once it is back under half its bound."""
        if len(self.mailbox) > self.max_queue // 2 and not self.job.terminal:
            return
        waiters, self.waiters = self.waiters or [], None
        for sender in waiters:
            sender.blocked = False
            sender.wake()

    def wake(self) -> None:
        """Put the cell back on the run queue if it has mail and may run."""
        if self.mailbox and not self.scheduled and self.runnable and not self.job.terminal:
            self.scheduled = True
            self.job.runtime.scheduler.ready(self)

    async def _drain_async(self) -> None:
        job = self.job
        mailbox = self.mailbox
        try:
            self.status = RUNNING
            while mailbox and self.runnable and not job.terminal:
                message = mailbox.popleft()
                self.taken += 1
                self.current = message
                self.invocation = self.processed + 1
                self.emitted = 0
                job.received(self, message)
                try:
                    await self.agent.handle_async(message)
                except asyncio.CancelledError:
                    if not job.terminal:  # suspended, not ended: the message is not lost
                        mailbox.appendleft(message)
                        self.taken -= 1
                    raise
                except Exception as exc:
                    self._failed(exc, message)
                    return
                finally:
                    self.current = None
                self.processed += 1
                self.dirty = True
                job.runtime.writer.mark(job)
                if self.waiters is not None:
                    self.wake_waiters()
        finally:
            self.task = None
            self._after_slice()

    def _failed(self, exc: BaseException, message: Message) -> None:
        """A handler raised. ``AgentError`` is a reported failure and fails the job; anything
        else is a crash, which the job's ``recovery_mode`` may repair (see :mod:`.recovery`)."""
        error = str(exc) or type(exc).__name__
        if not isinstance(exc, AgentError):
            from .recovery import restart_in_place

            if restart_in_place(self, error, message):
                return
            error = self.last_error or error
        self.status = FAILED
        self.last_error = error
        self.dirty = True
        details = exc.details if isinstance(exc, AgentError) else {}
        self.job.fail(self.agent_id, error, details)

    def unsaved_log(self) -> list[tuple[str, int, dict[str, Any]]]:
        """New entries of the agent's append-only log, as rows under :func:`log_key`."""
        key = log_key(self.agent_id)
        rows, self.log_backlog = self.log_backlog, []
        return rows + [(key, pos, entry) for pos, entry in self.agent.unsaved_log()]

    def unsaved_mail(self) -> list[tuple[str, int, dict[str, Any]]]:
        """Queued messages not yet in the store, as ``(agent_id, position, message)`` rows.

        Mail queued and consumed between two commits never needs writing: its effect is in
        the consumer's state, which is committed in the same batch.
        """
        start = max(self.persisted, self.taken)
        rows = [
            (self.agent_id, pos, self.mailbox[pos - self.taken - 1].to_dict())
            for pos in range(start + 1, self.appended + 1)
        ]
        self.persisted = self.appended
        return rows

    # -- inspection --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The persisted agent record (original snapshot fields, §7)."""
        node = self.node
        try:
            state = self.agent.inspect_state()
        except Exception as exc:  # an agent's view must never break inspection
            state = {"error": f"inspect_state failed: {exc}"}
        current = self.current
        return {
            "agent_id": self.agent_id,
            "node_id": node.node_id,
            "agent_type": node.agent_type,
            "type": node.type,
            "role": node.role,
            "status": self.status,
            "current_state": state,
            "mailbox_depth": len(self.mailbox),
            "processed_messages": self.processed,
            "assigned_node": self.config.node_name,
            "inflight_message": current.to_dict() if current is not None else None,
            "pending_messages": [m.to_dict() for m in self.mailbox] if self.paused else [],
            "last_error": self.last_error,
            "recovery_state": self.agent.snapshot_state(),
            "queue": {"taken": self.taken, "appended": self.appended},
            "restarts": self.restarts,
            "last_heartbeat_at": now_iso(),
            "parent_job_id": self.job_id,
            "metadata": {
                "paused": self.paused,
                "backpressure": self.blocked,
                "max_queue_size": self.max_queue,
                "outbound_edges": [to for _, to in self.out_edges],
                "heartbeat_interval_ms": int(self.config.heartbeat_interval * 1000),
            },
        }
