"""Crash recovery: restart a crashed agent in place, and resume a job whose runtime died.

The store always holds a *consistent cut* of a job: every batch carries the events, the
agent states, the queue offsets and the still-queued mail of one instant (the event loop
is single-threaded, so nothing moves while a batch is collected). Resuming from it
re-processes only what was not committed, and every emit replayed carries the same
deterministic id, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agents import create_agent, preflight
from ..bundle import Bundle, load_bundle, manifest_from_data
from ..errors import ExecutionError, JobNotFound, JobStateError, ManifestError
from ..messages import Message, from_dict
from ..store.base import TERMINAL_STATUSES
from . import cell as states
from . import control, remote
from .cell import log_key

if TYPE_CHECKING:
    from .cell import AgentCell
    from .job import JobRun
    from .runtime import Runtime

DEFAULT_RESTARTS = 3


def restart_limit(policies: dict[str, Any]) -> int:
    value = policies.get("max_agent_restart_attempts", DEFAULT_RESTARTS)
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else DEFAULT_RESTARTS
    )


def restart_in_place(cell: AgentCell, error: str, message: Message) -> bool:
    """Apply the job's ``recovery_mode`` to an agent whose handler crashed.

    ``local_restart``: rebuild the agent from its state and hand it the message again, at
    most ``max_agent_restart_attempts`` times. ``manual_recover``: put the message back and
    pause the job for an operator. Returns False when the job must fail instead.
    """
    job = cell.job
    mode = job.manifest.recovery_mode
    if mode == "manual_recover":
        _requeue(cell, message)
        cell.last_error = error
        job.event("agent_crashed", cell.agent_id, {"error": error, "recovery_mode": mode})
        if job.status == "running":
            control.pause(job)
        return True
    limit = restart_limit(job.manifest.policies)
    if cell.restarts >= limit:
        cell.last_error = f"agent {cell.agent_id} exceeded restart attempts ({limit}): {error}"
        return False
    cell.restarts += 1
    job.event("agent_recovery_started", cell.agent_id, None, {"attempt": cell.restarts, "error": error})
    cell.log_backlog += cell.unsaved_log()  # the old agent's entries not stored yet
    fresh = create_agent(cell.node, cell)
    fresh.restore_state(cell.agent.snapshot_state())
    fresh.restore_log(cell.agent.log_entries())
    cell.agent = fresh
    _requeue(cell, message)
    job.event("agent_recovered", cell.agent_id, None, {"attempt": cell.restarts})
    return True


def _requeue(cell: AgentCell, message: Message) -> None:
    cell.mailbox.appendleft(message)
    cell.taken -= 1
    cell.status = states.IDLE
    cell.dirty = True


async def recover_job(rt: Runtime, job_id: str) -> JobRun:
    """Host a job whose runtime died, from its last committed state in the store."""
    from .job import JobRun

    record = await rt._read(rt.store.get_job, job_id)
    if record is None:
        raise JobNotFound(job_id)
    if record.get("status") in TERMINAL_STATUSES:
        raise JobStateError(job_id, f"job {job_id} already ended ({record['status']}); nothing to recover")
    if job_id in rt.jobs:
        raise JobStateError(job_id, f"job {job_id} is already running in this runtime")
    await _ensure_orphaned(record)
    bundle = await _bundle(rt, record)
    refused = await _refused_here(rt, bundle)
    snapshots = {s["agent_id"]: s for s in await rt._read(rt.store.get_agents, job_id)}
    mail = await rt._read(rt.store.read_mailboxes, job_id)
    last_seq = await rt._read(rt.store.count_events, job_id)
    job = JobRun(rt, bundle, job_id)
    rt.jobs[job_id] = job
    restore(job, record, snapshots, mail, last_seq)
    if refused is not None:  # e.g. a server restarted without --allow-host-local: never run it anyway
        job.fail("job_runner", f"job {job_id} cannot be resumed by this runtime: {refused}")
    return job


async def _refused_here(rt: Runtime, bundle: Bundle) -> str | None:
    """What this runtime's execution policy refuses in the bundle (it was checked elsewhere)."""
    try:
        await asyncio.to_thread(preflight, bundle, rt.config)
    except ManifestError as exc:
        return str(exc)
    except ExecutionError:
        return None  # the sandbox is missing here: the runs say so, the job may be recovered later
    return None


async def _ensure_orphaned(record: dict[str, Any]) -> None:
    endpoint = record.get("control")
    if not endpoint:
        return
    try:
        node = await remote.call(endpoint, {"op": "node"}, timeout=3)
    except remote.Unreachable:
        return
    if record["job_id"] in node.get("jobs", []):
        raise JobStateError(
            record["job_id"], f"job {record['job_id']} is still running in {node.get('name')}"
        )


async def _bundle(rt: Runtime, record: dict[str, Any]) -> Bundle:
    job_id = record["job_id"]
    root = (record.get("manifest_ref") or {}).get("job_path")
    data = await rt._read(rt.store.get_blob, job_id, "manifest")
    try:
        if data is not None:
            path = Path(root) if root else None
            return Bundle(manifest_from_data(data, path / "payloads" if path else None), path)
        if root:
            return load_bundle(root)
    except ManifestError as exc:
        raise JobStateError(
            job_id, f"cannot recover job {job_id}: its manifest no longer loads: {exc}"
        ) from exc
    raise JobStateError(
        job_id, f"cannot recover job {job_id}: neither its manifest nor its bundle path is stored"
    )


def restore(
    job: JobRun,
    record: dict[str, Any],
    snapshots: dict[str, dict[str, Any]],
    mail: dict[str, list[tuple[int, dict[str, Any]]]],
    last_seq: int,
) -> None:
    """Rebuild every agent from its snapshot and queue, then let the job run on."""
    job.recovered = True
    job.submitted_at = record.get("submitted_at") or job.submitted_at
    job.seq = last_seq
    job.build_cells()
    for cell in job.cells.values():
        try:
            cell.agent = create_agent(cell.node, cell)
            _restore_cell(job, cell, snapshots.get(cell.agent_id), mail.get(cell.agent_id, []))
            cell.agent.restore_log([entry for _, entry in mail.get(log_key(cell.agent_id), [])])
        except Exception as exc:
            # Never a silent fresh start: the job fails loudly and the stored data stays.
            job.keep_snapshots = True
            cell.status = states.FAILED
            job.fail(cell.agent_id, f"cannot restore agent {cell.agent_id} from its snapshot: {exc}")
            return
    paused = record.get("status") == "paused"
    job.status = "paused" if paused else "running"
    job.event(
        "job_recovery_started", None, None, {"previous_node": record.get("node"), "agents": len(job.cells)}
    )
    job.touch()
    for cell in job.cells.values():
        cell.wake()


def _restore_cell(
    job: JobRun, cell: AgentCell, snap: dict[str, Any] | None, rows: list[tuple[int, dict[str, Any]]]
) -> None:
    inflight = None
    if snap is not None:
        state = snap.get("recovery_state")
        if state is not None and not isinstance(state, dict):
            raise ValueError(f"recovery_state is {type(state).__name__}, not an object")
        cell.agent.restore_state(state or {})
        cell.processed = int(snap.get("processed_messages") or 0)
        cell.taken = int((snap.get("queue") or {}).get("taken", cell.processed))
        cell.restarts = int(snap.get("restarts") or 0)
        cell.paused = bool((snap.get("metadata") or {}).get("paused"))
        if snap.get("inflight_message"):
            inflight = from_dict(snap["inflight_message"])
    queue: list[Message] = []
    if inflight is not None:
        cell.taken -= 1  # it will be taken again
        queue.append(inflight)
    first = cell.taken + len(queue)  # positions up to here are consumed or re-queued
    seeds = job.manifest.inputs_for(cell.agent_id) if cell.agent_id in job.manifest.entrypoints else []
    from .job import seed_message

    queue += [seed_message(job.job_id, cell.agent_id, i, seeds[i]) for i in range(first, len(seeds))]
    queue += [from_dict(message) for pos, message in rows if pos > max(first, len(seeds))]
    if queue:
        cell.mailbox = deque(queue)
    cell.appended = cell.persisted = cell.taken + len(queue)
    cell.pruned = 0  # the first commit drops rows consumed before the crash
    cell.status = states.PAUSED if cell.paused else states.IDLE
    cell.dirty = True
