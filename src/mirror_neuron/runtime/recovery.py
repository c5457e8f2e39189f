"""Resuming a job whose runtime died (or suspended it), from its last commit in the store.

The store always holds a *consistent cut* of a job: every batch carries the events, the
agent states, the queue offsets and the still-queued mail of one instant (the event loop
is single-threaded, so nothing moves while a batch is collected). Resuming from it
re-processes only what was not committed, and every emit replayed carries the same
deterministic id, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..agents import create_agent, preflight
from ..bundle import Bundle
from ..errors import ExecutionError, JobNotFound, JobStateError, ManifestError
from ..messages import Message
from ..states import JobStatus, job_move
from ..store.base import TERMINAL_STATUSES
from ..validation import load_bundle, manifest_from_data
from . import remote
from .host import Host
from .job import JobRun
from .mailbox import log_key, seed_message


async def recover_job(host: Host, hosted: dict[str, JobRun], job_id: str) -> JobRun:
    """Host a job whose runtime is gone, from its last committed state in the store."""
    record = await host.read(host.store.get_job, job_id)
    if record is None:
        raise JobNotFound(job_id)
    if record.get("status") in TERMINAL_STATUSES:
        raise JobStateError(job_id, f"job {job_id} already ended ({record['status']}); nothing to recover")
    if job_id in hosted:
        raise JobStateError(job_id, f"job {job_id} is already running in this runtime")
    await _ensure_orphaned(record)
    bundle = await _bundle(host, record)
    refused = await _refused_here(host, bundle)
    snapshots = {s["agent_id"]: s for s in await host.read(host.store.get_agents, job_id)}
    mail = await host.read(host.store.read_mailboxes, job_id)
    last_seq = await host.read(host.store.count_events, job_id)
    job = JobRun(host, bundle, job_id)
    hosted[job_id] = job
    restore(job, record, snapshots, mail, last_seq)
    if refused is not None:  # e.g. a server restarted without --allow-host-local: never run it anyway
        job.fail("job_runner", f"job {job_id} cannot be resumed by this runtime: {refused}")
    return job


async def _refused_here(host: Host, bundle: Bundle) -> str | None:
    """What this runtime's execution policy refuses in the bundle (it was checked elsewhere)."""
    try:
        await asyncio.to_thread(preflight, bundle, host.config)
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


async def _bundle(host: Host, record: dict[str, Any]) -> Bundle:
    job_id = record["job_id"]
    root = (record.get("manifest_ref") or {}).get("job_path")
    data = await host.read(host.store.get_blob, job_id, "manifest")
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


def _resumes_as(record: dict[str, Any]) -> JobStatus:
    """Where a recovered job goes on: paused if it was paused (also when it was suspended so)."""
    status = record.get("status")
    if status == JobStatus.SUSPENDED:
        status = record.get("suspended_from")
    return JobStatus.PAUSED if status == JobStatus.PAUSED else JobStatus.RUNNING


def _seeder(job_id: str, agent_id: str, seeds: list[Any]) -> Callable[[int], Message]:
    """Remakes initial input ``i`` of ``agent_id`` (never stored as mail: the manifest has it)."""
    return lambda i: seed_message(job_id, agent_id, i, seeds[i])


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
    manifest = job.manifest
    for cell in job.build_cells().values():
        agent_id = cell.agent_id
        seeds = manifest.inputs_for(agent_id) if agent_id in manifest.entrypoints else []
        try:
            cell.restore(
                create_agent(cell.node, cell),
                snapshots.get(agent_id),
                mail.get(agent_id, []),
                len(seeds),
                _seeder(job.job_id, agent_id, seeds),
            )
            cell.agent.restore_log([entry for _, entry in mail.get(log_key(agent_id), [])])
        except Exception as exc:
            # Never a silent fresh start: the job fails loudly and the stored data stays.
            job.keep_snapshots = True
            error = f"cannot restore agent {agent_id} from its snapshot: {exc}"
            cell.broken(error)
            job.fail(agent_id, error)
            return
    job.status = job_move(job.job_id, job.status, _resumes_as(record))
    job.event(
        "job_recovery_started", None, None, {"previous_node": record.get("node"), "agents": len(job.cells)}
    )
    job.touch()
    for cell in job.cells.values():
        cell.wake()
