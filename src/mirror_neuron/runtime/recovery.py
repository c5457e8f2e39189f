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

from .._time import now, now_iso
from ..agents import create_agent, preflight
from ..bundle import Bundle
from ..errors import ExecutionError, JobNotFound, JobStateError, ManifestError, Unrecoverable
from ..events import make as make_event
from ..execution import UnsafeTempDir, run_dir
from ..messages import Message
from ..states import JobStatus, job_move
from ..store.base import TERMINAL_STATUSES, WriteBatch
from ..validation import load_bundle, manifest_from_data
from . import remote, shipping
from .host import Host
from .job import JobRun
from .mailbox import log_key, seed_message
from .reads import dead_here


async def recover_job(host: Host, hosted: dict[str, JobRun], job_id: str) -> JobRun:
    """Host a job whose runtime is gone, from its last committed state in the store."""
    record = await host.read(host.store.get_job, job_id)
    if record is None:
        raise JobNotFound(job_id)
    if record.get("status") in TERMINAL_STATUSES:
        raise JobStateError(job_id, f"job {job_id} already ended ({record['status']}); nothing to recover")
    if job_id in hosted:
        raise JobStateError(job_id, f"job {job_id} is already running in this runtime")
    epoch = await claim(host, record)
    try:
        record = await host.read(host.store.get_job, job_id) or record  # as it is now that it is ours
        if record.get("status") in TERMINAL_STATUSES:
            raise JobStateError(
                job_id, f"job {job_id} already ended ({record['status']}); nothing to recover"
            )
        bundle = await _bundle(host, record)
        refused = await _refused_here(host, bundle)
        snapshots = {s["agent_id"]: s for s in await host.read(host.store.get_agents, job_id)}
        mail = await host.read(host.store.read_mailboxes, job_id)
        last_seq = await host.read(host.store.count_events, job_id)
    except BaseException:
        if host.leases is not None:
            await host.writer.run_blocking(host.leases.release_now, job_id)
        raise
    job = JobRun(host, bundle, job_id)
    job.lease_epoch = epoch
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


async def claim(host: Host, record: dict[str, Any]) -> int | None:
    """Take the job's lease for this runtime; the new epoch (``None``: nothing to own here).

    A live lease is taken over only when its holder is provably dead: the runtime the record
    names holds it, runs on this machine and its control socket refuses connections (a
    missing socket or a timeout proves nothing; fencing keeps even a wrong guess safe).

    Raises:
        JobStateError: another runtime holds the job and is alive (or may be).
    """
    if host.leases is None:
        return None
    job_id = record["job_id"]
    epoch = await host.leases.claim(job_id)
    if epoch is None and await _holder_gone(host, record):
        epoch = await host.leases.claim(job_id, steal=True)
    if epoch is None:
        lease = await host.read(host.store.get_lease, job_id)
        holder = lease.node if lease is not None else record.get("node")
        wait = f"; its lease expires in {lease.expires_in:.1f}s unless renewed" if lease is not None else ""
        raise JobStateError(job_id, f"job {job_id} is still running in {holder}{wait}")
    return epoch


#: What :func:`settle_stored` makes of a stored record: the fields to change, and the events
#: to append (type, fields), in order.
Rewrite = Callable[[dict[str, Any]], tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]


async def settle_stored(
    host: Host, job_id: str, epoch: int | None, rewrite: Rewrite
) -> tuple[bool, dict[str, Any]]:
    """Change the stored record of a job hosted nowhere, under the lease this runtime claimed
    for it (``epoch``; released at the end, written or not): ``(True, new record)``, or
    ``(False, stored record)`` when the job had ended meanwhile (nothing written)."""
    try:
        record = await host.read(host.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        if record.get("status") in TERMINAL_STATUSES:
            return False, record
        changes, events = rewrite(record)
        seq, at = await host.read(host.store.count_events, job_id), now()
        new = {**record, **changes, "updated_at": now_iso()}
        made = [
            make_event(seq + i, type_, job_id, at, None, None, extra)
            for i, (type_, extra) in enumerate(events, 1)
        ]
        batch = WriteBatch([new], {job_id: made}, epochs={job_id: epoch} if epoch is not None else {})
        await host.writer.run_blocking(host.store.write_batch, batch)
        return True, new
    finally:
        if epoch is not None and host.leases is not None:
            await host.writer.run_blocking(host.leases.release_now, job_id)


async def _holder_gone(host: Host, record: dict[str, Any]) -> bool:
    """True when the lease's holder is the runtime the record names, it is not this one, and
    it is provably gone: its control socket on this machine refuses connections, or its name
    is ``<this host>:<pid>`` and that process no longer exists."""
    endpoint = record.get("control")
    lease = await host.read(host.store.get_lease, record["job_id"])
    if not endpoint or lease is None or lease.node != record.get("node"):
        return False
    if lease.node == host.config.node_name:
        return False
    try:
        await remote.call(str(endpoint), {"op": "node"}, timeout=3)
    except remote.Unreachable as exc:  # refused, or its socket gone with the process it named
        return exc.refused or dead_here(lease.node)
    return False


async def _bundle(host: Host, record: dict[str, Any]) -> Bundle:
    job_id = record["job_id"]
    root = (record.get("manifest_ref") or {}).get("job_path")
    if root and not await asyncio.to_thread(_usable, Path(root), host.config.temp_dir):
        root = await _shipped(host, job_id) or root  # another machine's folder, or another process's copy
    data = await host.read(host.store.get_blob, job_id, "manifest")
    try:
        if data is not None:
            path = Path(root) if root else None
            return Bundle(manifest_from_data(data, path / "payloads" if path else None), path)
        if root:
            return load_bundle(root)
    except ManifestError as exc:
        raise Unrecoverable(
            job_id, f"cannot recover job {job_id}: its manifest no longer loads: {exc}"
        ) from exc
    raise Unrecoverable(
        job_id, f"cannot recover job {job_id}: neither its manifest nor its bundle path is stored"
    )


def _usable(root: Path, temp_dir: Path) -> bool:
    """Whether the job's folder can be run from here: it exists, and is not another process's
    copy of shipped files (that process removes it when the job leaves it)."""
    if not root.is_dir():
        return False
    return not root.name.startswith(shipping.PREFIX) or shipping.is_shipped(root, run_dir(temp_dir))


async def _shipped(host: Host, job_id: str) -> str | None:
    """The job's bundle files as stored with it, written to a private folder here (``None``:
    none were stored)."""
    files = await host.read(host.store.get_blob, job_id, shipping.BLOB)
    if not files:
        return None
    try:
        parent = await asyncio.to_thread(run_dir, host.config.temp_dir)
        return str(await asyncio.to_thread(shipping.unpack, files, parent, job_id))
    except (OSError, ValueError, TypeError, UnsafeTempDir) as exc:
        raise Unrecoverable(job_id, f"cannot recover job {job_id}: its stored bundle files: {exc}") from exc


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
    node = job.host.config.node_name
    if record.get("status") != JobStatus.SUSPENDED:  # it did not stop on purpose: its owner died
        job.event(
            "job_owner_lost", None, None, {"node": record.get("node"), "epoch": record.get("lease_epoch")}
        )
    if job.lease_epoch is not None:
        job.event(
            "job_claimed",
            None,
            None,
            {"node": node, "epoch": job.lease_epoch, "previous": record.get("node")},
        )
    job.event(
        "job_recovery_started", None, None, {"previous_node": record.get("node"), "agents": len(job.cells)}
    )
    job.touch()
    for cell in job.cells.values():
        cell.wake()
