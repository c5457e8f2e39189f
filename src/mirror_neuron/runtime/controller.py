"""Operator actions on jobs, wherever they run on this host: control, recovery, cleanup.

A job hosted by this runtime is acted on directly (:mod:`.control`); one hosted by
another process is reached through its control socket (:mod:`.remote`); one whose
process is gone can still be cancelled or recovered. ``Runtime.control`` is one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import JobNotFound, JobStateError, NotFound, NotHosted
from ..states import JobStatus
from ..store.base import TERMINAL_STATUSES
from . import control, remote
from .host import Host
from .job import JobRun
from .reads import JobReader
from .recovery import claim, recover_job, settle_stored

#: Seconds a read of the node registry serves control calls.
NODES_FRESH = 1.0


class Control:
    """Pause, resume, cancel, send, re-drive, recover and clean up jobs by id."""

    def __init__(
        self,
        host: Host,
        hosted: dict[str, JobRun],
        reader: JobReader,
        *,
        started: Callable[[], Awaitable[Any]],
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self.host = host
        self.hosted = hosted
        self.reader = reader
        self._started = started
        self._describe = describe
        self._nodes_view: list[dict[str, Any]] = []
        self._nodes_read_at = -NODES_FRESH

    async def pause(self, job_id: str) -> dict[str, Any]:
        """Pause a running job: agents stop after their current message; mail accumulates."""
        return await self._call("pause", job_id)

    async def resume(self, job_id: str) -> dict[str, Any]:
        """Resume a paused job: each agent processes its backlog, oldest first."""
        return await self._call("resume", job_id)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a running or paused job (running scripts are killed, queued mail dropped)."""
        return await self._call("cancel", job_id)

    async def send_message(self, job_id: str, agent_id: str, message: Any) -> dict[str, Any]:
        """Enqueue a message (flat or envelope form) in one agent's mailbox, bypassing edges.

        Acknowledged once the message is stored; raises MessageError for a message the store
        could not hold (checked before it goes anywhere) and StoreError when it was not stored.
        """
        if job_id not in self.hosted:  # before it is encoded for another runtime (a job here: control checks)
            control.check_message(job_id, agent_id, message)
        return await self._call("send", job_id, agent_id=agent_id, message=message)

    async def dead_letters(self, job_id: str) -> list[dict[str, Any]]:
        return control.dead_letters(await self.reader.events(job_id))

    async def redrive(self, job_id: str, letter_id: int, agent_id: str | None = None) -> dict[str, Any]:
        """Deliver a dead letter again (to its original agent, or to ``agent_id``)."""
        letters = {d["id"]: d for d in await self.dead_letters(job_id)}
        if letter_id not in letters:
            raise NotFound(f"job {job_id} has no dead letter {letter_id}")
        target, message = control.redrive_request(job_id, letters[letter_id], agent_id)
        return await self.send_message(job_id, target, message)

    async def recover(self, job_id: str) -> str:
        """Resume a job whose runtime is gone (or suspended it), from its last commit; returns its id."""
        await self._started()
        await recover_job(self.host, self.hosted, job_id)
        return job_id

    async def recover_orphans(self) -> list[str]:
        """Recover every live job whose runtime is gone (``mn serve`` does this at start-up)."""
        recovered = []
        for record in await self.host.read(self.host.store.list_jobs, include_terminal=False):
            try:
                recovered.append(await self.recover(record["job_id"]))
            except (JobStateError, JobNotFound):
                continue
        return recovered

    async def cleanup(self, *, all: bool = False) -> dict[str, Any]:
        """Delete ended jobs and their data. Live jobs (running, paused, suspended or orphaned)
        are never deleted, ``all`` or not: they are listed in ``skipped_jobs``."""
        jobs = await self.host.read(self.host.store.list_jobs)
        doomed, skipped = [], []
        for job in jobs:
            if job.get("status") in TERMINAL_STATUSES and job["job_id"] not in self.hosted:
                doomed.append(job["job_id"])
            else:
                skipped.append({"job_id": job["job_id"], "status": job.get("status")})
        deleted = []
        for job_id in doomed:
            if await self.host.writer.run_blocking(self._delete_ended, job_id):
                deleted.append(job_id)
        return {"deleted_count": len(deleted), "deleted_jobs": deleted, "skipped_jobs": skipped}

    def _delete_ended(self, job_id: str) -> bool:
        """Delete a job only if the store still has it ended (it is read again, in the writer's thread)."""
        record = self.host.store.get_job(job_id)
        if record is None or record.get("status") not in TERMINAL_STATUSES:
            return False
        return bool(self.host.store.delete_job(job_id))

    # -- routing ------------------------------------------------------------------------

    async def _apply(self, op: str, job: JobRun, args: dict[str, Any]) -> dict[str, Any]:
        """Act on a job hosted here; acknowledged only once the change is stored (group commit)."""
        self.host.writer.check_writable()  # change nothing that could not be stored
        if op == "send":
            result = control.send_message(job, str(args.get("agent_id")), args.get("message"))
        elif op == "pause":
            result = control.pause(job)
        elif op == "resume":
            result = control.resume(job)
        elif op == "cancel":
            result = control.cancel(job)
        else:
            raise JobStateError(job.job_id, f"unknown control operation {op!r}")
        await self.host.writer.commit(job)  # StoreError, not an acknowledgement, if it was not stored
        return result

    async def serve(self, request: dict[str, Any]) -> Any:
        """Answer a control call from another process (see :class:`.remote.ControlServer`)."""
        if request.get("op") == "node":
            return self._describe()
        job_id = str(request.get("job_id"))
        job = self.hosted.get(job_id)
        if job is None:
            raise NotHosted(job_id, f"job {job_id} is no longer hosted by this runtime")
        return await self._apply(str(request.get("op")), job, request)

    async def _call(self, op: str, job_id: str, **args: Any) -> dict[str, Any]:
        """Act on a job wherever it runs: here, in its owner (followed once after a failover),
        or, for cancel, in the store once its owner is known gone."""
        # Degraded: this runtime's jobs have failed in memory and its store takes no writes, so
        # say that (StoreError) rather than that the job is no longer hosted.
        self.host.writer.check_writable()
        job = self.hosted.get(job_id)
        if job is not None:
            return await self._apply(op, job, args)
        record = await self.reader.stored(job_id)
        for attempt in range(2):
            status = record.get("status")
            if status in TERMINAL_STATUSES:
                verb = "is already in a terminal state" if op == "cancel" else "is not running"
                raise JobStateError(job_id, f"job {job_id} {verb} ({status})")
            endpoint = await self._owner(record)
            if endpoint is not None:
                try:
                    result: dict[str, Any] = await remote.call(
                        endpoint,
                        {"op": op, "job_id": job_id, **args},
                        token=self.host.config.api_token,
                        client=self.host.nodes,
                    )
                    return result
                except (remote.Unreachable, NotHosted):
                    pass
            fresh = await self.reader.stored(job_id)
            moved = (fresh.get("node"), fresh.get("lease_epoch")) != (
                record.get("node"),
                record.get("lease_epoch"),
            )
            record = fresh
            if not moved or attempt:
                break
        if op == "cancel" and record.get("status") not in TERMINAL_STATUSES:
            return await self._force_cancel(record)
        if record.get("status") in TERMINAL_STATUSES:
            raise JobStateError(job_id, f"job {job_id} is not running ({record.get('status')})")
        raise JobStateError(job_id, await self._unreachable(record))

    async def _owner(self, record: dict[str, Any]) -> str | None:
        """Where the job's owner takes control calls: a live node's address, or (a runtime on
        this machine) its control socket."""
        if record.get("status") == JobStatus.SUSPENDED:
            return None
        node = record.get("node")
        for view in await self._nodes():
            if view["name"] == node and view["alive"] and view.get("address"):
                return str(view["address"])
        endpoint = record.get("control")
        return str(endpoint) if endpoint else None

    async def _nodes(self) -> list[dict[str, Any]]:
        """The node registry, read at most every :data:`NODES_FRESH` seconds (a call to an owner
        that died since is followed to the new one anyway)."""
        if time.monotonic() - self._nodes_read_at > NODES_FRESH:
            self._nodes_view = await self.host.read(self.host.store.list_nodes)
            self._nodes_read_at = time.monotonic()
        return self._nodes_view

    async def _unreachable(self, record: dict[str, Any]) -> str:
        """Why a live job could not be reached, and what to do about it."""
        job_id, node = record["job_id"], record.get("node")
        if record.get("status") == JobStatus.SUSPENDED:
            return f"job {job_id} is suspended; run `mn job recover {job_id}` to resume it"
        lease = await self.host.read(self.host.store.get_lease, job_id)
        if lease is not None and lease.live:
            return (
                f"job {job_id} is owned by node {lease.node}, which does not answer; its lease expires "
                f"in {lease.expires_in:.1f}s, then another node of the cluster may take the job over"
            )
        return (
            f"job {job_id} is not running in any live runtime (it was hosted by {node}); "
            f"run `mn job recover {job_id}` to resume it"
        )

    async def _force_cancel(self, record: dict[str, Any]) -> dict[str, Any]:
        """Cancel a job whose runtime is gone: only the stored record can be ended, under a lease
        taken from the store (so never while a live owner holds it)."""
        job_id = record["job_id"]
        reason = "forced cancellation of orphaned job"

        def cancelled(stored: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
            return {"status": "cancelled", "result": {"reason": reason}}, [
                ("job_cancelled", {"reason": reason})
            ]

        written, stored = await settle_stored(self.host, job_id, await claim(self.host, record), cancelled)
        if not written:
            raise JobStateError(job_id, f"job {job_id} is already in a terminal state ({stored['status']})")
        return {"job_id": job_id, "status": "cancelled", "forced": True}
