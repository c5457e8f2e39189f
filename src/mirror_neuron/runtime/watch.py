"""Live views for monitors: agent status, coalesced, and a job's updates in one stream.

Every ``interval`` the agents of a job are compared with what was last reported and the
changed ones come out together: at most one status per agent per interval, however many
messages it handled meanwhile. A job hosted here is read from memory (no store call); a
job hosted elsewhere from its stored snapshots, which its runtime writes with each group
commit. The iterator ends once the job has ended and its final statuses are out.

:func:`updates` merges a job's events with those statuses into one stream of
:data:`Update` tuples ending with ``("end", {"status": …})``: what the server's event stream
and the terminal monitors both send on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

from ..store.base import TERMINAL_STATUSES
from .reads import JobReader, final_agent_views

#: Seconds between two looks at a job hosted here.
INTERVAL = 0.25
#: Seconds between two reads of a job's snapshots from the store.
STORE_INTERVAL = 0.5
#: Longest wait after the terminal event for the agents' final statuses (seconds).
FINAL_STATUS_WAIT = 2.0
#: Updates buffered before the followers wait for a slow reader.
BUFFER = 1024

#: ``("event", event)``, ``("agents", [changed agent statuses])`` or ``("end", {"status": …})``.
Update = tuple[Literal["event", "agents", "end"], Any]

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


async def updates(
    reader: JobReader, job_id: str, *, after: int = 0, agents: bool = True
) -> AsyncGenerator[Update, None]:
    """The job's events after ``after`` and (with ``agents``) its agents' changed statuses, as
    they come; after the last event, the statuses that trail it (by up to one interval), then
    ``("end", {"status": …})``. A failure of either follower is raised here.

    Each follower runs in a task of its own and hands over through a bounded queue (a slow
    reader holds them back). Closing the generator stops them.
    """
    queue: asyncio.Queue[Update | BaseException | None] = asyncio.Queue(BUFFER)

    async def pump(kind: Literal["event", "agents"], source: AsyncIterator[Any]) -> None:
        try:
            async for item in source:
                await queue.put((kind, item))
            if kind == "event":
                await queue.put(None)  # the last event is out
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.create_task(pump("event", reader.follow(job_id, after=after)), name=f"follow-{job_id}")]
    if agents:
        tasks.append(asyncio.create_task(pump("agents", agent_statuses(reader, job_id))))
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item
                continue
            if tasks[1:]:
                await asyncio.wait(tasks[1:], timeout=FINAL_STATUS_WAIT)
            while not queue.empty():
                last = queue.get_nowait()
                if isinstance(last, tuple) and last[0] == "agents":
                    yield last
            yield ("end", {"status": (await reader.inspect_job(job_id)).get("status")})
            return
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
