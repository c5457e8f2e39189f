"""An agent cell: one agent of a hosted job, its mailbox, its lifecycle and its view of the job.

The cell is what the scheduler runs. It processes one message at a time from its
:class:`~.mailbox.Mailbox` and implements :class:`~mirror_neuron.agents.base.AgentContext`,
so the agent can emit, record events and complete the job. Idle cells cost a few hundred
bytes and no task: a cell is only on the run queue while it has mail.
Fields change here, through methods named for what happens (``pause``, ``requeue``,
``stop``, ``restore``, ``collect``), not by assignments from the job or the runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._time import now_iso
from ..agents.base import Agent, AgentError
from ..messages import Message, from_dict
from ..states import TERMINAL_AGENT_STATES, AgentStatus, agent_move
from . import logs, runs
from .host import Host
from .mailbox import NO_MAILBOX, Mailbox, log_key
from .writer import Committable

if TYPE_CHECKING:
    from pathlib import Path

    from ..bundle.model import Bundle, Node
    from ..config import Config

IDLE, RUNNING, PAUSED = AgentStatus.IDLE, AgentStatus.RUNNING, AgentStatus.PAUSED


class Owner(Committable, Protocol):
    """What a cell needs of the job that hosts it (:class:`~.job.JobRun` is one)."""

    job_id: str
    bundle: Bundle
    cells: dict[str, AgentCell]
    terminal: bool
    #: Ended or suspended: none of its agents is scheduled again.
    halted: bool
    recovered: bool
    lease_epoch: int | None
    blobs: dict[str, Any]  # named JSON values stored with the job's next batch (executor logs)
    #: Handlers in flight (async agents' drain tasks).
    in_flight: int
    host: Host

    def deliver(self, cell: AgentCell, message: Message, sender: AgentCell | None = None) -> None: ...

    def received(self, cell: AgentCell, m: Message) -> None: ...

    def dead_letter(self, agent_id: str, message: Message, reason: str) -> None: ...

    def event(
        self, type: str, agent_id: str | None = None, payload: Any = None, extra: dict[str, Any] | None = None
    ) -> None: ...

    def complete(self, agent_id: str, output: Any) -> None: ...

    def fail(self, agent_id: str, error: str, details: dict[str, Any] | None = None) -> None: ...

    #: Applies the recovery mode to a crashed handler; False when the job must fail.
    def crashed(self, cell: AgentCell, error: str, message: Message) -> bool: ...


class AgentCell:
    """Hosts one agent of a running job."""

    __slots__ = (
        "_route_cache",
        "agent",
        "agent_id",
        "blocked",
        "bound",
        "config",
        "current",
        "dirty",
        "emitted",
        "job",
        "job_id",
        "last_error",
        "log_backlog",
        "mailbox",
        "node",
        "out_edges",
        "paused",
        "processed",
        "restarts",
        "scheduled",
        "services",
        "status",
        "task",
    )

    def __init__(self, job: Owner, node: Node, out_edges: tuple[tuple[str, str], ...] = ()) -> None:
        self.job = job
        self.job_id = job.job_id
        self.node = node
        self.agent_id = node.node_id
        self.config: Config = job.host.config
        self.services: dict[str, Any] = job.host.services
        bound = node.config.get("max_queue_size")
        valid = isinstance(bound, int) and not isinstance(bound, bool) and bound > 0
        #: The most messages the mailbox holds before senders are held back.
        self.bound: int = bound if isinstance(bound, int) and valid else self.config.max_queue_size
        self.mailbox = NO_MAILBOX
        self.status = AgentStatus.INITIALIZING
        self.paused = False
        #: Set while a mailbox this agent emitted into is over its bound (backpressure).
        self.blocked = False
        self.scheduled = False
        self.dirty = True
        self.processed = 0
        #: Emits made while handling the current message (the index in deterministic ids).
        self.emitted = 0
        self.restarts = 0
        #: Log rows taken from a replaced agent (restart in place) and not yet stored.
        self.log_backlog: list[tuple[str, int, dict[str, Any]]] = []
        self.current: Message | None = None
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.out_edges = out_edges  # (message_type, to_node)
        self._route_cache: dict[str, tuple[AgentCell, ...]] = {}
        self.agent: Agent = None  # type: ignore[assignment]  # set by start() or restore()

    # -- AgentContext ------------------------------------------------------------

    node_id = property(lambda self: self.agent_id, doc="The node's id (AgentContext).")

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
        inv = self.processed + 1  # the invocation: 1-based number of the message being handled
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
            self.agent_id, node_id, type, body, message_id=(self.agent_id, self.processed + 1, k), **opts
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
        """Store an executor's finished run durably, before its output is emitted (see :mod:`.runs`)."""
        await runs.save(self.job, self.agent_id, run)

    async def saved_run(self) -> dict[str, Any] | None:
        return await runs.saved(self.job, self.agent_id)

    def log_run(self, entry: dict[str, Any]) -> None:
        """Keep an executor run's stdout and stderr for ``mn job logs`` (see :mod:`.logs`)."""
        logs.record(self.job, self.agent_id, self.invocation, entry)
        self.job.host.writer.mark(self.job)

    def open_mailbox(self) -> Mailbox:
        """This agent's own mailbox, made on its first mail."""
        if self.mailbox is NO_MAILBOX:
            self.mailbox = Mailbox(self.bound)
        return self.mailbox

    # -- lifecycle ---------------------------------------------------------------

    def move(self, target: AgentStatus) -> None:
        """Go to ``target`` if the lifecycle table allows it (a terminal agent stays terminal)."""
        self.status = agent_move(self.status, target)
        self.dirty = True

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_AGENT_STATES

    @property
    def runnable(self) -> bool:
        return not self.paused and not self.blocked and self.status not in TERMINAL_AGENT_STATES

    def start(self, agent: Agent) -> None:
        self.agent = agent
        self.move(IDLE)

    def pause(self) -> None:
        """Stop after the current message; new mail accumulates in order."""
        self.paused = True
        self.dirty = True
        if not self.scheduled and self.task is None:
            self.move(PAUSED)

    def resume(self) -> int:
        """Go on with the backlog, oldest first; returns its size."""
        self.paused = False
        if self.status == PAUSED:
            self.move(IDLE)
        self.dirty = True
        self.wake()
        return len(self.mailbox)

    def stop(self, final: AgentStatus) -> int:
        """The job ended: drop the mail (returns how much); a handler in flight is ``stopping``."""
        dropped = self.mailbox.clear()
        if not self.terminal:
            # Its stored snapshot is not rewritten just for this: readers of an ended job
            # derive the final status (see ``final_agent_views``); only changed agents are saved.
            self.status = agent_move(self.status, AgentStatus.STOPPING if self.task is not None else final)
        else:
            self.dirty = True
        return dropped

    def stopped(self, final: AgentStatus) -> None:
        """The job's end has finished stopping this (async) agent."""
        self.dirty = True  # stopping may have changed its state
        if not self.terminal:
            self.status = agent_move(self.status, final)

    def requeue(self, message: Message, error: str | None = None) -> None:
        """Hand ``message`` to this agent again (after a crash), first in line."""
        self.mailbox.put_back(message)
        if error is not None:
            self.last_error = error
        self.move(IDLE)

    def replace_agent(self, fresh: Agent) -> None:
        """Restart in place: ``fresh`` takes over the old agent's state, log and mail."""
        self.log_backlog += self.unsaved_log()  # the old agent's entries not stored yet
        fresh.restore_state(self.agent.snapshot_state())
        fresh.restore_log(self.agent.log_entries())
        self.agent = fresh
        self.restarts += 1

    def crashed_runtime(self, error: str) -> None:
        """A bug in the runtime itself while running this agent: its job fails, nothing else."""
        self.scheduled = False
        self.job.fail(self.agent_id, error)

    def broken(self, error: str) -> None:
        """The agent could not be created or restored: it fails (the job fails with it)."""
        self.last_error = error
        self.status = AgentStatus.FAILED
        self.dirty = True

    # -- processing --------------------------------------------------------------

    @property
    def invocation(self) -> int:
        """1-based number of the message being handled (the middle of deterministic ids)."""
        return self.processed + 1

    def _progressed(self) -> None:
        """After handled messages: save the state with the next commit, let held senders go."""
        self.dirty = True
        self.job.host.writer.mark(self.job)
        if self.mailbox.waiters is not None:
            self.mailbox.release(force=self.job.terminal)

    def run_slice(self, limit: int) -> int:
        """Process up to ``limit`` messages (sync agents) or start the async drain task."""
        if self.agent.is_async:
            if self.task is None:
                self.job.in_flight += 1
                self.task = asyncio.get_running_loop().create_task(self._drain_async())
            return 1
        # The hot path: messages are popped from the borrowed queue and the mailbox is told
        # how many were taken when the slice ends (nothing else runs during a sync slice).
        mailbox = self.mailbox
        queue = mailbox.queue
        popleft = queue.popleft
        job = self.job
        handle = self.agent.handle
        received = job.received
        n = 0
        self.status = RUNNING
        while queue and n < limit:
            message = popleft()
            n += 1
            self.emitted = 0
            received(self, message)
            try:
                handle(message)
            except Exception as exc:
                mailbox.took(n)
                self._failed(exc, message)
                self.after_slice()  # a restarted agent goes back on the run queue
                return n
            self.processed += 1
            if job.halted or self.paused or self.blocked:
                break
        mailbox.took(n)
        self._progressed()
        self.after_slice()
        return n

    async def _drain_async(self) -> None:
        job = self.job
        mailbox = self.mailbox
        try:
            self.status = RUNNING
            while mailbox.queue and self.runnable and not job.halted:
                message = self.current = mailbox.take()
                self.emitted = 0
                job.received(self, message)
                try:
                    await self.agent.handle_async(message)
                except asyncio.CancelledError:
                    if not job.terminal:  # suspended, not ended: the message is not lost
                        mailbox.put_back(message)
                    raise
                except Exception as exc:
                    self._failed(exc, message)
                    return
                finally:
                    self.current = None
                self.processed += 1
                self._progressed()
        finally:
            self.task = None
            self.job.in_flight -= 1
            self.after_slice()
            self.job.host.scheduler.nudge()  # the runtime may have gone quiet with this

    def after_slice(self) -> None:
        """Back on the run queue while there is mail and the agent may run; else idle (or paused)."""
        self.scheduled = False
        if self.terminal:
            return
        if self.mailbox.queue and not self.paused and not self.blocked and not self.job.halted:
            self.scheduled = True
            self.job.host.scheduler.ready(self)
        else:
            self.status = agent_move(self.status, PAUSED if self.paused else IDLE)

    def wake(self) -> None:
        """Put the cell back on the run queue if it has mail and may run."""
        if self.mailbox.queue and not self.scheduled and self.runnable and not self.job.halted:
            self.scheduled = True
            self.job.host.scheduler.ready(self)

    def _failed(self, exc: BaseException, message: Message) -> None:
        """A handler raised. ``AgentError`` is a reported failure and fails the job; anything
        else is a crash, which the job's ``recovery_mode`` may repair (see :mod:`.restart`)."""
        error = str(exc) or type(exc).__name__
        if not isinstance(exc, AgentError):
            if self.job.crashed(self, error, message):
                return
            error = self.last_error or error
        self.broken(error)
        details = exc.details if isinstance(exc, AgentError) else {}
        self.job.fail(self.agent_id, error, details)

    # -- persistence -------------------------------------------------------------

    def unsaved_log(self) -> list[tuple[str, int, dict[str, Any]]]:
        """New entries of the agent's append-only log, as rows under :func:`log_key`."""
        key = log_key(self.agent_id)
        rows, self.log_backlog = self.log_backlog, []
        if self.agent is None:  # it could not be created: it has no log
            return rows
        return rows + [(key, pos, entry) for pos, entry in self.agent.unsaved_log()]

    def collect(
        self,
        snaps: list[dict[str, Any]],
        mail: list[tuple[str, int, dict[str, Any]]],
        consumed: dict[str, int],
        ended: bool,
    ) -> None:
        """Add what changed since the last commit: snapshot, log, new mail, consumed positions."""
        if not self.dirty:
            return
        self.dirty = False
        snaps.append(self.snapshot())
        mail += self.unsaved_log()
        if not ended:
            mail += self.mailbox.unsaved(self.agent_id)
        upto = self.mailbox.newly_consumed(ended)
        if upto is not None:
            consumed[self.agent_id] = upto

    def restore(
        self,
        agent: Agent,
        snap: dict[str, Any] | None,
        rows: list[tuple[int, dict[str, Any]]],
        seeds: int,
        seed: Callable[[int], Message],
    ) -> None:
        """Rebuild from a stored snapshot and the stored queue (``seed(i)`` remakes initial input i)."""
        self.agent = agent
        inflight = None
        taken = 0
        if snap is not None:
            state = snap.get("recovery_state")
            if state is not None and not isinstance(state, dict):
                raise ValueError(f"recovery_state is {type(state).__name__}, not an object")
            agent.restore_state(state or {})
            self.processed = int(snap.get("processed_messages") or 0)
            taken = int((snap.get("queue") or {}).get("taken", self.processed))
            self.restarts = int(snap.get("restarts") or 0)
            self.paused = bool((snap.get("metadata") or {}).get("paused"))
            if snap.get("inflight_message"):
                inflight = from_dict(snap["inflight_message"])
        self.open_mailbox().restore(taken, inflight, seeds, seed, rows)
        self.move(PAUSED if self.paused else IDLE)

    # -- inspection --------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The persisted agent record (original snapshot fields, §7)."""
        node = self.node
        agent = self.agent
        try:
            state = agent.inspect_state() if agent is not None else {}
        except Exception as exc:  # an agent's view must never break inspection
            state = {"error": f"inspect_state failed: {exc}"}
        current = self.current
        mailbox = self.mailbox
        return {
            "agent_id": self.agent_id,
            "node_id": node.node_id,
            "agent_type": node.agent_type,
            "type": node.type,
            "role": node.role,
            "status": self.status.value,
            "current_state": state,
            "mailbox_depth": len(mailbox),
            "processed_messages": self.processed,
            "assigned_node": self.config.node_name,
            "inflight_message": current.to_dict() if current is not None else None,
            "pending_messages": [m.to_dict() for m in mailbox] if self.paused else [],
            "last_error": self.last_error,
            "recovery_state": agent.snapshot_state() if agent is not None else None,  # never created
            "queue": {"taken": mailbox.taken, "appended": mailbox.appended},
            "restarts": self.restarts,
            "last_heartbeat_at": now_iso(),
            "parent_job_id": self.job_id,
            "metadata": {
                "paused": self.paused,
                "backpressure": self.blocked,
                "max_queue_size": self.bound,
                "outbound_edges": [to for _, to in self.out_edges],
                "heartbeat_interval_ms": int(self.config.heartbeat_interval * 1000),
            },
        }
