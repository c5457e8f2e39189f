"""An executor's finished runs, stored before their output is emitted (exactly-once on recovery).

The write carries the job's lease epoch like every batch of the job: a deposed owner whose
executor finishes late can never overwrite what the new owner stored (it stops instead).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..errors import LeaseLost
from ..store.base import WriteBatch
from .host import Host


class RunOwner(Protocol):
    """The job of the executor (:class:`~.job.JobRun` is one)."""

    job_id: str
    host: Host
    recovered: bool
    lease_epoch: int | None

    def fence(self, reason: str) -> None: ...


async def save(job: RunOwner, agent_id: str, run: dict[str, Any]) -> None:
    """Store ``run`` as the agent's last finished run; a job whose lease moved stops here.

    Raises:
        asyncio.CancelledError: another node owns the job now (nothing was stored).
    """
    epochs = {} if job.lease_epoch is None else {job.job_id: job.lease_epoch}
    batch = WriteBatch(blobs={job.job_id: {f"run:{agent_id}": run}}, epochs=epochs)
    try:
        await job.host.writer.run_blocking(job.host.store.write_batch, batch)
    except LeaseLost as exc:
        job.fence(str(exc))
        raise asyncio.CancelledError from exc


async def saved(job: RunOwner, agent_id: str) -> dict[str, Any] | None:
    """The agent's last stored run; looked up only for a recovered job."""
    if not job.recovered:
        return None
    run: dict[str, Any] | None = await job.host.read(job.host.store.get_blob, job.job_id, f"run:{agent_id}")
    return run
