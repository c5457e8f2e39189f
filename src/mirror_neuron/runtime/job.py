"""A hosted job: its agents, its event log and its lifecycle.

``pending → running ⇄ paused → completed | failed | cancelled`` (see :mod:`mirror_neuron.states`).
The first terminal transition wins and is final: later completions, failures or writes
are ignored, and every agent stops taking messages the moment the job ends. A live job
may instead be *suspended*: stopped at a message boundary and left for ``mn job recover``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .._time import now, now_iso
from ..agents import create_agent
from ..errors import JobStateError
from ..events import Event
from ..events import make as make_event
from ..messages import Message
from ..states import TERMINAL_AGENT_STATES, AgentStatus, JobStatus, final_agent_status, job_move
from ..store.base import WriteBatch
from . import batches
from .cell import AgentCell
from .host import Host
from .mailbox import NO_MAILBOX, seed_message
from .restarts import handle_crash
from .stalls import StallWatch, waiting_for

if TYPE_CHECKING:
    from ..bundle.model import Bundle

RECEIVED = "agent_message_received"
#: How long a job's end waits for its agents to stop (kill scripts, release leases).
STOP_TIMEOUT = 30.0
_tuple_new = tuple.__new__
#: Events too frequent to be the "last thing that happened" in a progress display.
QUIET_EVENTS = frozenset({RECEIVED, "aggregator_received", "collector_received"})


class JobRun:
    """The coordinator of one job inside a :class:`~mirror_neuron.runtime.Runtime`."""

    def __init__(self, host: Host, bundle: Bundle, job_id: str) -> None:
        self.host = host
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.job_id = job_id
        self.status = JobStatus.PENDING
        self.result: Any = None
        self.error: str | None = None
        self.submitted_at = now_iso()
        self.updated_at = self.submitted_at
        self.heartbeat_at = self.submitted_at
        self.cells: dict[str, AgentCell] = {}
        self.seq = 0
        self.pending_events: list[Event] = []
        self.dirty = False  # queued in the writer
        self.record_dirty = True
        self.terminal = False
        #: Set once the job ended or was suspended here: no agent of it is scheduled again.
        self.halted = False
        #: Handlers in flight (async agents' drain tasks).
        self.in_flight = 0
        self.done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        #: Resolved (with why) when the job leaves this runtime without ending: suspended.
        self.gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.listeners: list[asyncio.Queue[Event | None]] = []
        #: Named values to store with the next batch (the manifest, executor outputs).
        self.blobs: dict[str, Any] = {}
        #: True for a job resumed from the store after its runtime died.
        self.recovered = False
        #: Set when stored snapshots must not be overwritten (one could not be restored).
        self.keep_snapshots = False
        #: Newest event worth showing an operator (progress displays).
        self.last_event: Event | None = None
        #: Why the store refused this job's data (it failed for it); then only its record and
        #: events are written, made safe.
        self.store_error: str | None = None
        #: Whether the job cannot progress on its own (see :meth:`check_stall`).
        self.stall = StallWatch()
        #: Where the job was when it was suspended (it resumes there).
        self.suspended_from: JobStatus | None = None
        #: The epoch of this runtime's lease on the job (every batch carries it; None: unleased).
        self.lease_epoch: int | None = None
        #: Set once another node claimed the job: it stops here and is never written again.
        self.fenced = False
        #: Suspended to be taken up by another node (a drain), not left for an operator.
        self.handoff = False

    # -- records ------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The job record (original fields, §4.4) plus this runtime's ownership."""
        m = self.manifest
        root = self.bundle.root_path
        record = {
            "job_id": self.job_id,
            "graph_id": m.graph_id,
            "job_name": m.job_name,
            "status": self.status.value,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "root_agent_ids": list(m.entrypoints),
            "placement_policy": m.policies.get("placement_policy", "local"),
            "recovery_policy": m.recovery_mode,
            "daemon": m.daemon,
            "result": self.result,
            "manifest_ref": {
                "graph_id": m.graph_id,
                "manifest_version": m.manifest_version,
                "manifest_path": str(self.bundle.manifest_path) if root else None,
                "job_path": str(root) if root else None,
            },
            "node": self.host.config.node_name,
            "lease_epoch": self.lease_epoch,
            "control": None if self.status is JobStatus.SUSPENDED else self.host.control_endpoint(),
            "heartbeat_at": self.heartbeat_at,
            "agent_count": len(m.nodes),
            "stalled": self.stall.info,
        }
        if self.suspended_from is not None:
            record["suspended_from"] = self.suspended_from.value
            record["handoff"] = self.handoff  # any node of the cluster takes it up at once
        return record

    def touch(self) -> None:
        self.updated_at = now_iso()
        self.record_dirty = True
        self.host.writer.mark(self)

    def collect(self, batch: WriteBatch) -> None:
        """Add what changed since the last batch: events, agent snapshots, mail, blobs, the record."""
        job_id = self.job_id
        if self.fenced:
            return
        if self.lease_epoch is not None:
            batch.epochs[job_id] = self.lease_epoch
        if self.store_error is not None:
            self._collect_failed(batch)
            return
        if self.pending_events:
            batch.events[job_id] = self.pending_events
            self.pending_events = []
        if not self.keep_snapshots:
            snaps: list[dict[str, Any]] = []
            mail: list[tuple[str, int, dict[str, Any]]] = []
            consumed: dict[str, int] = {}
            for cell in self.cells.values():
                cell.collect(snaps, mail, consumed, self.terminal)
            if snaps:
                batch.agents[job_id] = snaps
            if mail:
                batch.messages[job_id] = mail
            if consumed:
                batch.consumed[job_id] = consumed
        if self.blobs:
            batch.blobs[job_id], self.blobs = self.blobs, {}
        if self.record_dirty:
            self.record_dirty = False
            batch.jobs.append(self.record())

    def _collect_failed(self, batch: WriteBatch) -> None:
        """The store refused this job's data: only its record and events (made safe) are written.

        Its snapshots, mail and blobs are dropped, since one of them is likely what the store
        refused, and a failed job is never resumed from them.
        """
        if self.pending_events:
            batch.events[self.job_id] = batches.safe_events(self.pending_events)
            self.pending_events = []
        for cell in self.cells.values():
            cell.dirty = False
        self.blobs = {}
        if self.record_dirty:
            self.record_dirty = False
            batch.jobs.append(self.record())

    # -- events -------------------------------------------------------------------

    def event(
        self, type: str, agent_id: str | None = None, payload: Any = None, extra: dict[str, Any] | None = None
    ) -> None:
        self.seq += 1
        ev = make_event(self.seq, type, self.job_id, now(), agent_id, payload, extra)
        self.pending_events.append(ev)
        if type not in QUIET_EVENTS:
            self.last_event = ev
        if self.listeners:
            self.publish(ev)
        if not self.dirty:
            self.host.writer.mark(self)

    def received(self, cell: AgentCell, m: Message) -> None:
        """The ``agent_message_received`` event: the hottest event, kept to one tuple."""
        self.seq = seq = self.seq + 1
        meta = m.meta
        about = (
            m._mid,
            m.sender,
            m.to,
            m.type,
            meta.cls,
            meta.content_type,
            meta.content_encoding,
            meta.stream,
        )
        ev = _tuple_new(Event, (seq, RECEIVED, self.job_id, now(), cell.agent_id, about, None))
        self.pending_events.append(ev)
        if self.listeners:
            self.publish(ev)

    def publish(self, item: Event | None) -> None:
        """Hand an event (``None``: the end) to live followers.

        A follower whose bounded buffer is full is dropped and marked ``lagging``: it reads
        on from the store instead, so a slow client never makes the runtime hold events.
        """
        for queue in list(self.listeners):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.listeners.remove(queue)
                queue.lagging = True  # type: ignore[attr-defined]

    # -- start --------------------------------------------------------------------

    def start(self) -> None:
        """Create every agent, seed the entrypoints, then go ``running`` (§4.2)."""
        self.event("job_pending")
        self.event("job_validated")
        self.event("job_scheduled", extra={"node": self.host.config.node_name})
        for cell in self.build_cells().values():
            try:
                cell.start(create_agent(cell.node, cell))
            except Exception as exc:
                error = f"failed to start agent {cell.agent_id}: {exc}"
                cell.broken(error)
                self.fail(cell.agent_id, error)
                return
        try:
            self._seed()
        except Exception as exc:
            self.fail("job_coordinator", f"failed to seed initial inputs: {exc}")
            return
        self.status = job_move(self.job_id, self.status, JobStatus.RUNNING)
        self.event("job_running")
        self.touch()

    def build_cells(self) -> dict[str, AgentCell]:
        """One cell per node with its outbound routes (agents are created by the caller)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for edge in self.manifest.edges:
            out.setdefault(edge.from_node, []).append((edge.message_type, edge.to_node))
        cells = self.cells
        for node in self.manifest.nodes:
            cells[node.node_id] = AgentCell(self, node, tuple(out.get(node.node_id, ())))
        return cells

    def _seed(self) -> None:
        for entrypoint in self.manifest.entrypoints:
            target = self.cells[entrypoint]
            for i, payload in enumerate(self.manifest.inputs_for(entrypoint)):
                self.deliver(target, seed_message(self.job_id, entrypoint, i, payload))
            target.mailbox.seeded()

    # -- delivery -----------------------------------------------------------------

    def deliver(self, cell: AgentCell, message: Message, sender: AgentCell | None = None) -> None:
        """Enqueue ``message``; an agent emitting into a full mailbox is held back (backpressure).

        Nothing is dropped: the message is always queued, and the *sender* stops taking
        messages until the receiver has drained to half its bound.
        """
        if cell.status in TERMINAL_AGENT_STATES:
            return
        mailbox = cell.mailbox
        if mailbox is NO_MAILBOX:
            mailbox = cell.open_mailbox()
        depth = mailbox.put(message)
        cell.dirty = True
        if self.stall.info is not None:
            self.stall.end()
            self.record_dirty = True
        if depth >= mailbox.bound and sender is not None and sender is not cell and not cell.blocked:
            if not sender.blocked:
                sender.blocked = True
                self.event(
                    "backpressure",
                    sender.agent_id,
                    {"target": cell.agent_id, "mailbox_depth": depth, "max_queue_size": mailbox.bound},
                )
            mailbox.hold(sender)
        if not cell.scheduled and not cell.paused and not cell.blocked and not self.halted:
            cell.scheduled = True
            self.host.scheduler.ready(cell)

    def dead_letter(self, agent_id: str, message: Message, reason: str) -> None:
        """Keep an undeliverable message as a ``dead_letter`` event (listable, re-drivable)."""
        self.event("dead_letter", agent_id, None, {"reason": reason, "message": message.to_dict()})

    # -- control --------------------------------------------------------------------

    def live_cells(self) -> list[AgentCell]:
        return [c for c in self.cells.values() if not c.terminal]

    def pause(self) -> int:
        """Stop every live agent after its current message; returns how many were paused."""
        if self.status is not JobStatus.RUNNING:
            raise JobStateError(
                self.job_id, f"job {self.job_id} is not running (status: {self.status.value})"
            )
        self.status = job_move(self.job_id, self.status, JobStatus.PAUSED)
        cells = self.live_cells()
        for cell in cells:
            cell.pause()
        self.event("job_paused", None, None, {"agents": len(cells)})
        self.touch()
        return len(cells)

    def resume(self) -> tuple[int, int]:
        """Let paused agents go on; returns ``(agents, backlog)``."""
        if self.status is not JobStatus.PAUSED:
            raise JobStateError(self.job_id, f"job {self.job_id} is not paused (status: {self.status.value})")
        self.status = job_move(self.job_id, self.status, JobStatus.RUNNING)
        cells = [c for c in self.cells.values() if c.paused]
        backlog = sum(cell.resume() for cell in cells)
        self.event("job_resumed", None, None, {"agents": len(cells), "backlog": backlog})
        self.touch()
        return len(cells), backlog

    def crashed(self, cell: AgentCell, error: str, message: Message) -> bool:
        """Apply the job's ``recovery_mode`` to an agent whose handler crashed (see :mod:`.restarts`)."""
        return handle_crash(self, cell, error, message)

    # -- stalls ---------------------------------------------------------------------

    def check_stall(self) -> None:
        """Called when the runtime's run queue is empty: a running job with no handler in
        flight can then only go on through a message from outside. Daemons wait by design."""
        if self.status is not JobStatus.RUNNING or self.halted or self.in_flight or self.stall.info:
            return
        if self.manifest.daemon:
            return
        waiting = [
            {"agent_id": c.agent_id, "waiting_for": why}
            for c in self.cells.values()
            if not c.terminal and (why := waiting_for(c.agent)) is not None
        ]
        held = sorted(c.agent_id for c in self.cells.values() if c.blocked and c.mailbox)
        report = self.stall.begin(waiting, held)
        self.event("job_stalled", None, None, {"reason": report["reason"], "waiting": report["waiting"]})
        self.touch()

    # -- termination ----------------------------------------------------------------

    def complete(self, agent_id: str, output: Any) -> None:
        if self.terminal:
            return
        cell = self.cells.get(agent_id)
        if cell is not None:
            cell.move(AgentStatus.COMPLETED)
        if self._terminate(JobStatus.COMPLETED, {"agent_id": agent_id, "output": output}):
            self.event("job_completed", agent_id, None, {"result": output})
            self._finish()

    def fail(self, agent_id: str, error: str, details: dict[str, Any] | None = None) -> None:
        result: dict[str, Any] = {"agent_id": agent_id, "error": error}
        if details:
            result["details"] = details
        if self._terminate(JobStatus.FAILED, result):
            self.error = error
            self.event("job_failed", agent_id, None, {"reason": error})
            self._finish()

    def storage_failed(self, reason: str) -> None:
        """The store refused this job's data: fail it, so that memory says what the store says.

        A job that had just ended otherwise fails all the same: that end was never stored
        (the writer stores the failure instead), and waiters must not be told otherwise.
        """
        if self.store_error is not None:
            return
        self.store_error = reason
        if not self.terminal:
            self.fail(batches.FAILED_BY, reason)
            return
        if self.done.done():
            return  # too late to change what waiters were told; the store says failed
        self.status = JobStatus.FAILED
        self.result = {"agent_id": batches.FAILED_BY, "error": reason}
        self.error = reason
        self.event("job_failed", None, None, {"reason": reason})
        self.touch()

    def cancel(self, reason: str) -> None:
        if self._terminate(JobStatus.CANCELLED, {"reason": reason}):
            self.event("job_cancelled", None, None, {"reason": reason})
            self._finish()

    def _terminate(self, status: JobStatus, result: Any) -> bool:
        if self.terminal:
            return False
        self.status = job_move(self.job_id, self.status, status)
        self.terminal = self.halted = True
        self.result = result
        final = final_agent_status(status)
        dropped = sum(cell.stop(final) for cell in self.cells.values())
        if dropped:
            self.event("mailbox_cleared", None, {"count": dropped, "reason": status.value})
        self.touch()
        self.stall.end()
        return True

    def _finish(self) -> None:
        self.host.spawn(self._finalize())

    async def _finalize(self) -> None:
        """Stop agents (killing child processes), persist the final state, wake waiters."""
        await self._stop_agents()
        final = final_agent_status(self.status)
        for cell in self.cells.values():
            if cell.agent is not None and cell.agent.is_async:
                cell.stopped(final)
        self.record_dirty = True
        self.host.writer.mark(self)
        try:
            await self.host.writer.flush()
        finally:
            self.publish(None)
            if not self.done.done() and not self.fenced:  # fenced: the new owner's end counts
                self.done.set_result(self.record())
            self.host.release(self.job_id)

    async def suspend(self, reason: str, *, handoff: bool = False) -> bool:
        """Stop every agent at a message boundary without ending the job: ``mn job recover``
        (or with ``handoff``, another node) resumes it from there. False if it already ended."""
        if self.terminal or self.status is JobStatus.SUSPENDED:
            return False
        self.handoff = handoff
        self.halted = True
        mine = set(self.cells.values())
        self.host.scheduler.forget(lambda cell: cell in mine)
        await self._stop_agents()  # a handler cancelled here puts its message back (AgentCell._drain_async)
        if self.terminal:  # it ended while its handlers stopped
            return False
        self.suspended_from = self.status if self.status is not JobStatus.PENDING else JobStatus.RUNNING
        self.status = job_move(self.job_id, self.status, JobStatus.SUSPENDED)
        for cell in self.cells.values():
            cell.dirty = True
        self.event(
            "job_suspended", None, None, {"reason": reason, "resume_with": f"mn job recover {self.job_id}"}
        )
        self.touch()
        self.host.release(self.job_id)
        self.publish(None)
        if not self.gone.done():
            self.gone.set_result(f"job {self.job_id} was suspended: {reason}")
        return True

    def fence(self, reason: str) -> None:
        """Another node claimed this job: stop it here at once, and never write it again."""
        if self.fenced:
            return
        self.fenced = self.halted = True
        self.pending_events = []
        mine = set(self.cells.values())
        self.host.scheduler.forget(lambda cell: cell in mine)
        self.host.spawn(self._stop_agents())  # running scripts are killed; nothing is stored
        self.host.release(self.job_id)
        self.publish(None)
        if not self.gone.done():
            self.gone.set_result(f"job {self.job_id} moved to another node: {reason}")

    async def _stop_agents(self) -> None:
        """Cancel running handlers and stop async agents (their scripts), waiting, bounded, for both.

        Waiting for the handlers matters: they release executor leases on the way out.
        """
        tasks = []
        for cell in self.cells.values():
            task = cell.task
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                tasks.append(task)
        stops = [c.agent.stop() for c in self.cells.values() if c.agent is not None and c.agent.is_async]
        if not (stops or tasks):
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.gather(*stops, *tasks, return_exceptions=True)
        except TimeoutError:
            self.event("agents_stop_timeout", None, {"seconds": STOP_TIMEOUT})
