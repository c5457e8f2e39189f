"""Live agent status for monitors: what changed, coalesced, so no UI polls ``/agents``.

Every ``interval`` the agents of a job are compared with what was last reported and the
changed ones come out together: at most one status per agent per interval, however many
messages it handled meanwhile. A job hosted here is read from memory (no store call); a
job hosted elsewhere from its stored snapshots, which its runtime writes with each group
commit. The iterator ends once the job has ended and its final statuses are out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..store.base import TERMINAL_STATUSES
from .reads import JobReader, final_agent_views

#: Seconds between two looks at a job hosted here.
INTERVAL = 0.25
#: Seconds between two reads of a job's snapshots from the store.
STORE_INTERVAL = 0.5

#: Agents compared per interval; a bigger job is looked at less often (100,000 agents: every
#: 1.25 s), so that watching it costs a few percent of a core, not the job's throughput.
AGENTS_PER_INTERVAL = 20_000

Status = tuple[str, int, int, str | None]


def status_view(agent_id: str, status: Status) -> dict[str, Any]:
    state, depth, processed, error = status
    return {
        "agent_id": agent_id,
        "status": state,
        "mailbox_depth": depth,
        "processed": processed,
        "last_error": error,
    }


async def _current(reader: JobReader, job_id: str) -> tuple[dict[str, Status], bool, bool]:
    """Every agent's status, whether the job is hosted here, and whether it has ended."""
    job = reader.hosted.get(job_id)
    if job is not None:
        cells = job.cells
        now = {k: (c.status.value, len(c.mailbox), c.processed, c.last_error) for k, c in cells.items()}
        return now, True, False
    record = await reader.stored(job_id)
    views = final_agent_views(record, await reader.read(reader.store.get_agents, job_id))
    now = {
        str(v.get("agent_id")): (
            str(v.get("status")),
            int(v.get("mailbox_depth") or 0),
            int(v.get("processed_messages") or 0),
            v.get("last_error"),
        )
        for v in views
    }
    return now, False, record.get("status") in TERMINAL_STATUSES


async def agent_statuses(
    reader: JobReader, job_id: str, *, interval: float = INTERVAL
) -> AsyncIterator[list[dict[str, Any]]]:
    """Lists of changed agent statuses (all agents first), until the job has ended.

    Raises:
        JobNotFound: the job is not in the store.
    """
    last: dict[str, Status] = {}
    while True:
        now, hosted, ended = await _current(reader, job_id)
        changed = [status_view(k, v) for k, v in now.items() if last.get(k) != v]
        if changed:
            last.update((k, now[k]) for k in (c["agent_id"] for c in changed))
            yield changed
        if ended:
            return
        pace = interval if hosted else max(interval, STORE_INTERVAL)
        await asyncio.sleep(pace * max(1.0, len(now) / AGENTS_PER_INTERVAL))
