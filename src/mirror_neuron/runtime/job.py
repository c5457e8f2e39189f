"""A running job: its agents, its event log and its lifecycle.

``pending → running ⇄ paused → completed | failed | cancelled``. The first terminal
transition wins and is final: later completions, failures or writes are ignored, and
every agent stops taking messages the moment the job ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from .._time import now, now_iso
from ..agents import create_agent
from ..events import Event
from ..events import make as make_event
from ..messages import Message, normalize
from ..store.base import TERMINAL_STATUSES
from . import cell as states
from .batches import FAILED_BY
from .cell import NO_MAIL, AgentCell

if TYPE_CHECKING:
    from ..bundle.model import Bundle
    from .runtime import Runtime

RECEIVED = "agent_message_received"
#: How long a job's end waits for its agents to stop (kill scripts, release leases).
STOP_TIMEOUT = 30.0
_tuple_new = tuple.__new__
_TERMINAL_AGENT = states.TERMINAL_AGENT_STATES
#: Events too frequent to be the "last thing that happened" in a progress display.
QUIET_EVENTS = frozenset({RECEIVED, "aggregator_received", "collector_received"})


def seed_message(job_id: str, entrypoint: str, index: int, payload: Any) -> Message:
    """The ``index``-th initial input of ``entrypoint``, with a deterministic id."""
    if isinstance(payload, dict):
        message = normalize(payload, job_id=job_id, to=entrypoint, type="init", cls="command")
        if "message_id" in payload or "message_id" in payload.get("envelope", {}):
            return message
    else:
        message = Message("init", payload, job_id=job_id, to=entrypoint, cls="command")
    message._mid = f"init:{entrypoint}:{index}"
    return message


class JobRun:
    """The coordinator of one job inside a :class:`~mirror_neuron.runtime.Runtime`."""

    def __init__(self, runtime: Runtime, bundle: Bundle, job_id: str) -> None:
        self.runtime = runtime
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.job_id = job_id
        self.status = "pending"
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
        self.done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.listeners: list[asyncio.Queue[Event]] = []
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

    # -- records ------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """The job record (original fields, §4.4) plus this runtime's ownership."""
        m = self.manifest
        root = self.bundle.root_path
        return {
            "job_id": self.job_id,
            "graph_id": m.graph_id,
            "job_name": m.job_name,
            "status": self.status,
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
            "node": self.runtime.config.node_name,
            "control": self.runtime.control_endpoint,
            "heartbeat_at": self.heartbeat_at,
            "agent_count": len(m.nodes),
        }

    def touch(self) -> None:
        self.updated_at = now_iso()
        self.record_dirty = True
        self.runtime.writer.mark(self)

    # -- events -------------------------------------------------------------------

    def event(
        self, type: str, agent_id: str | None = None, payload: Any = None, extra: dict | None = None
    ) -> None:
        self.seq += 1
        ev = make_event(self.seq, type, self.job_id, now(), agent_id, payload, extra)
        self.pending_events.append(ev)
        if type not in QUIET_EVENTS:
            self.last_event = ev
        if self.listeners:
            self.publish(ev)
        if not self.dirty:
            self.runtime.writer.mark(self)

    def received(self, cell: AgentCell, m: Message) -> None:
        """The ``agent_message_received`` event: the hottest event, kept to one tuple."""
        self.seq = seq = self.seq + 1
        meta = m.meta
        ev = _tuple_new(
            Event,
            (
                seq,
                RECEIVED,
                self.job_id,
                now(),
                cell.agent_id,
                (
                    m._mid,
                    m.sender,
                    m.to,
                    m.type,
                    meta.cls,
                    meta.content_type,
                    meta.content_encoding,
                    meta.stream,
                ),
                None,
            ),
        )
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
                queue.put_nowait(item)  # type: ignore[arg-type]
            except asyncio.QueueFull:
                self.listeners.remove(queue)
                queue.lagging = True  # type: ignore[attr-defined]

    # -- start --------------------------------------------------------------------

    def start(self) -> None:
        """Create every agent, seed the entrypoints, then go ``running`` (§4.2)."""
        node_name = self.runtime.config.node_name
        self.event("job_pending")
        self.event("job_validated")
        self.event("job_scheduled", extra={"node": node_name})
        cells = self.build_cells()
        for cell in cells.values():
            try:
                cell.agent = create_agent(cell.node, cell)
            except Exception as exc:
                cell.status = states.FAILED
                self.fail(cell.agent_id, f"failed to start agent {cell.agent_id}: {exc}")
                return
            cell.status = states.IDLE
        try:
            self._seed()
        except Exception as exc:
            self.fail("job_coordinator", f"failed to seed initial inputs: {exc}")
            return
        self.status = "running"
        self.event("job_running")
        self.touch()

    def build_cells(self) -> dict[str, AgentCell]:
        """One cell per node with its outbound routes (agents are created by the caller)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for edge in self.manifest.edges:
            out.setdefault(edge.from_node, []).append((edge.message_type, edge.to_node))
        cells = self.cells
        for node in self.manifest.nodes:
            cell = AgentCell(self, node)
            cell.out_edges = tuple(out.get(node.node_id, ()))
            cells[node.node_id] = cell
        return cells

    def _seed(self) -> None:
        for entrypoint in self.manifest.entrypoints:
            target = self.cells[entrypoint]
            for i, payload in enumerate(self.manifest.inputs_for(entrypoint)):
                self.deliver(target, seed_message(self.job_id, entrypoint, i, payload))
            # Initial inputs can always be rebuilt from the manifest: never written as mail.
            target.persisted = target.appended

    # -- delivery -----------------------------------------------------------------

    def deliver(self, cell: AgentCell, message: Message, sender: AgentCell | None = None) -> None:
        """Enqueue ``message``; an agent emitting into a full mailbox is held back (backpressure).

        Nothing is dropped: the message is always queued, and the *sender* stops taking
        messages until the receiver has drained to half its bound.
        """
        if cell.status in _TERMINAL_AGENT:
            return
        mailbox = cell.mailbox
        if mailbox is NO_MAIL:
            cell.mailbox = mailbox = deque()
        mailbox.append(message)
        cell.appended += 1
        cell.dirty = True
        if len(mailbox) >= cell.max_queue and sender is not None and sender is not cell and not cell.blocked:
            if not sender.blocked:
                sender.blocked = True
                self.event(
                    "backpressure",
                    sender.agent_id,
                    {
                        "target": cell.agent_id,
                        "mailbox_depth": len(mailbox),
                        "max_queue_size": cell.max_queue,
                    },
                )
            if cell.waiters is None:
                cell.waiters = []
            cell.waiters.append(sender)
        if not cell.scheduled and not cell.paused and not cell.blocked:
            cell.scheduled = True
            self.runtime.scheduler.ready(cell)

    def dead_letter(self, agent_id: str, message: Message, reason: str) -> None:
        """Keep an undeliverable message as a ``dead_letter`` event (listable, re-drivable)."""
        self.event("dead_letter", agent_id, None, {"reason": reason, "message": message.to_dict()})

    # -- termination ----------------------------------------------------------------

    def complete(self, agent_id: str, output: Any) -> None:
        cell = self.cells.get(agent_id)
        if self._terminate("completed", {"agent_id": agent_id, "output": output}):
            if cell is not None:
                cell.status = states.COMPLETED
            self.event("job_completed", agent_id, None, {"result": output})
            self._finish()

    def fail(self, agent_id: str, error: str, details: dict[str, Any] | None = None) -> None:
        result: dict[str, Any] = {"agent_id": agent_id, "error": error}
        if details:
            result["details"] = details
        if self._terminate("failed", result):
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
            self.fail(FAILED_BY, reason)
            return
        if self.done.done():
            return  # too late to change what waiters were told; the store says failed
        self.status = "failed"
        self.result = {"agent_id": FAILED_BY, "error": reason}
        self.error = reason
        self.event("job_failed", None, None, {"reason": reason})
        self.touch()

    def cancel(self, reason: str) -> None:
        if self._terminate("cancelled", {"reason": reason}):
            self.event("job_cancelled", None, None, {"reason": reason})
            self._finish()

    def _terminate(self, status: str, result: Any) -> bool:
        if self.terminal:
            return False
        self.terminal = True
        self.status = status
        self.result = result
        dropped = 0
        for cell in self.cells.values():
            dropped += len(cell.mailbox)
            if cell.mailbox:
                cell.mailbox.clear()
            if cell.status not in states.TERMINAL_AGENT_STATES:
                # An agent still in a handler (an executor's script) is "stopping" until it unwinds.
                # Its stored snapshot is not rewritten just for this: readers of an ended job
                # derive the final status (see ``final_agent_views``); only changed agents are saved.
                cell.status = states.STOPPING if cell.task is not None else self._stopped_state()
            else:
                cell.dirty = True
        if dropped:
            self.event("mailbox_cleared", None, {"count": dropped, "reason": status})
        self.touch()
        return True

    def _stopped_state(self) -> str:
        return states.CANCELLED if self.status == "cancelled" else states.STOPPED

    def _finish(self) -> None:
        self.runtime.spawn(self._finalize())

    async def _finalize(self) -> None:
        """Stop agents (killing child processes), persist the final state, wake waiters."""
        await self._stop_agents()
        for cell in self.cells.values():
            if cell.agent is not None and cell.agent.is_async:
                cell.dirty = True  # stopping may have changed its state; the others are saved already
                if cell.status not in states.TERMINAL_AGENT_STATES:
                    cell.status = self._stopped_state()
        self.record_dirty = True
        self.runtime.writer.mark(self)
        try:
            await self.runtime.writer.flush()
        finally:
            self.publish(None)
            if not self.done.done():
                self.done.set_result(self.record())
            self.runtime.job_finished(self)

    async def suspend(self) -> None:
        """Stop every agent at a message boundary without ending the job (it stays recoverable)."""
        await self._stop_agents()  # a handler cancelled here puts its message back (AgentCell._drain_async)
        for cell in self.cells.values():
            cell.dirty = True
        self.record_dirty = True
        self.runtime.writer.mark(self)
        self.runtime.jobs.pop(self.job_id, None)

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


def final_agent_views(record: dict[str, Any], snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agent snapshots of a stored job, with the status an ended job's agents really have.

    When a job ends, agents whose state did not change are not written again; an agent the
    store still shows as live was stopped (or cancelled) with its job.
    """
    status = record.get("status")
    if status not in TERMINAL_STATUSES:
        return snapshots
    final = states.CANCELLED if status == "cancelled" else states.STOPPED
    for snap in snapshots:
        if snap.get("status") not in states.TERMINAL_AGENT_STATES:
            snap["status"] = final
            snap["mailbox_depth"] = 0
            snap.get("metadata", {})["paused"] = False
    return snapshots
