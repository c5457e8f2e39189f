"""Operator actions on jobs: control (wherever a job runs on this host), recovery, cleanup.

A mixin of :class:`~mirror_neuron.runtime.Runtime`: a job hosted by this runtime is acted on
directly (:mod:`.control`); one hosted by another process is reached through its control
socket (:mod:`.remote`); one whose process is gone can still be cancelled or recovered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .._time import now, now_iso
from ..errors import JobNotFound, JobStateError, NotFound
from ..events import make as make_event
from ..store.base import TERMINAL_STATUSES, WriteBatch
from . import control, remote

if TYPE_CHECKING:
    from .job import JobRun
    from .runtime import Runtime


class Operations:
    async def recover(self: Runtime, job_id: str) -> str:
        """Resume a job whose runtime died, from its last committed state; returns its id."""
        from .recovery import recover_job

        if self._driver is None:
            await self.start()
        await recover_job(self, job_id)
        return job_id

    async def recover_orphans(self: Runtime) -> list[str]:
        """Recover every non-terminal job whose runtime is gone (``mn serve`` does this at start-up)."""
        recovered = []
        for record in await self._read(self.store.list_jobs, include_terminal=False):
            try:
                recovered.append(await self.recover(record["job_id"]))
            except (JobStateError, JobNotFound):
                continue
        return recovered

    async def pause(self: Runtime, job_id: str) -> dict[str, Any]:
        """Pause a running job: agents stop after their current message; mail accumulates."""
        return await self._control_call("pause", job_id)

    async def resume(self: Runtime, job_id: str) -> dict[str, Any]:
        """Resume a paused job: each agent processes its backlog, oldest first."""
        return await self._control_call("resume", job_id)

    async def cancel(self: Runtime, job_id: str) -> dict[str, Any]:
        """Cancel a running or paused job (running scripts are killed, queued mail dropped)."""
        return await self._control_call("cancel", job_id)

    async def send_message(self: Runtime, job_id: str, agent_id: str, message: Any) -> dict[str, Any]:
        """Enqueue a message (flat or envelope form) in one agent's mailbox, bypassing edges.

        Acknowledged once the message is stored; raises MessageError for a message the store
        could not hold (checked before it goes anywhere) and StoreError when it was not stored.
        """
        if job_id not in self.jobs:  # before it is encoded for another runtime (a job here: control checks)
            control.check_message(job_id, agent_id, message)
        return await self._control_call("send", job_id, agent_id=agent_id, message=message)

    async def dead_letters(self: Runtime, job_id: str) -> list[dict[str, Any]]:
        return control.dead_letters(await self.events(job_id))

    async def redrive(
        self: Runtime, job_id: str, letter_id: int, agent_id: str | None = None
    ) -> dict[str, Any]:
        """Deliver a dead letter again (to its original agent, or to ``agent_id``)."""
        letters = {d["id"]: d for d in await self.dead_letters(job_id)}
        if letter_id not in letters:
            raise NotFound(f"job {job_id} has no dead letter {letter_id}")
        target, message = control.redrive_request(job_id, letters[letter_id], agent_id)
        return await self.send_message(job_id, target, message)

    async def cleanup(self: Runtime, *, all: bool = False) -> dict[str, Any]:
        """Delete ended jobs (with ``all``, every job not hosted here) and their data."""
        jobs = await self._read(self.store.list_jobs)
        doomed = [
            j["job_id"]
            for j in jobs
            if j["job_id"] not in self.jobs and (all or j.get("status") in TERMINAL_STATUSES)
        ]
        for job_id in doomed:
            await self.writer.run_blocking(self.store.delete_job, job_id)
        return {"deleted_count": len(doomed), "deleted_jobs": doomed}

    async def _apply(self: Runtime, op: str, job: JobRun, args: dict[str, Any]) -> dict[str, Any]:
        """Act on a job hosted here; acknowledged only once the change is stored (group commit)."""
        self.writer.check_writable()  # change nothing that could not be stored
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
        await self.writer.commit(job)  # StoreError, not an acknowledgement, if it was not stored
        return result

    def inspect_node(self: Runtime) -> dict[str, Any]:
        """This runtime: its name, the jobs it hosts and its executor pools (with live usage)."""
        return {
            "name": self.config.node_name,
            "pid": os.getpid(),
            "control": self.control_endpoint,
            "store": self.store.url,
            "jobs": sorted(self.jobs),
            "executor_pools": self.services["leases"].stats(),
            "health": self.health(),
        }

    async def _serve_control(self: Runtime, request: dict[str, Any]) -> Any:
        if request.get("op") == "node":
            return self.inspect_node()
        job_id = str(request.get("job_id"))
        job = self.jobs.get(job_id)
        if job is None:
            raise JobStateError(job_id, f"job {job_id} is no longer hosted by this runtime")
        return await self._apply(str(request.get("op")), job, request)

    async def _control_call(self: Runtime, op: str, job_id: str, **args: Any) -> dict[str, Any]:
        # Degraded: this runtime's jobs have failed in memory and its store takes no writes, so
        # say that (StoreError) rather than that the job is no longer hosted.
        self.writer.check_writable()
        job = self.jobs.get(job_id)
        if job is not None:
            return await self._apply(op, job, args)
        record = await self._read(self.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        status = record.get("status")
        if status in TERMINAL_STATUSES:
            verb = "is already in a terminal state" if op == "cancel" else "is not running"
            raise JobStateError(job_id, f"job {job_id} {verb} ({status})")
        endpoint = record.get("control")
        if endpoint:
            try:
                return await remote.call(endpoint, {"op": op, "job_id": job_id, **args})
            except remote.Unreachable:
                pass
        if op == "cancel":
            return await self._force_cancel(record)
        raise JobStateError(
            job_id, f"job {job_id} is not running in any live runtime (it was hosted by {record.get('node')})"
        )

    async def _force_cancel(self: Runtime, record: dict[str, Any]) -> dict[str, Any]:
        """Cancel a job whose runtime died: only the stored record can be ended."""
        job_id = record["job_id"]
        reason = "forced cancellation of orphaned job"
        stamp = now_iso()
        ended = {**record, "status": "cancelled", "result": {"reason": reason}, "updated_at": stamp}
        seq = await self._read(self.store.count_events, job_id) + 1
        event = make_event(seq, "job_cancelled", job_id, now(), None, None, {"reason": reason})
        await self.writer.run_blocking(self.store.write_batch, WriteBatch([ended], {job_id: [event]}, {}))
        return {"job_id": job_id, "status": "cancelled", "forced": True}
