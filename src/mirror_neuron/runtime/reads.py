"""Reading jobs: records, agents, events, live tails and waiting for the end.

One :class:`JobReader` answers for every job of a store. A job hosted by the runtime
that owns the reader is answered from memory; any other job from the store, including
jobs another process runs, ran, or left behind when it died. ``mn job …`` commands use
a reader of the store alone (no hosted jobs), so a read never starts a runtime.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._time import epoch
from ..bundle.graph import graph_of
from ..bundle.loader import manifest_from_data
from ..bundle.model import Manifest
from ..errors import AgentNotFound, JobNotFound, JobOrphaned, JobStalled, JobTimeout, NotFound
from ..states import TERMINAL_AGENT_STATES, JobStatus, final_agent_status
from ..store.base import LIVE_STATUSES, TERMINAL_STATUSES, Store
from . import logs
from .blocking import call_store

if TYPE_CHECKING:
    from .job import JobRun

POLL_START = 0.01
POLL_MAX = 0.25
#: Events buffered per live follower before it falls back to reading the store.
FOLLOW_BUFFER = 10_000
#: A runtime whose heartbeat is older than this many of its intervals (and at least
#: ``MIN_SILENCE`` seconds) is taken for gone, unless it is on this machine and alive.
MISSED_BEATS = 5
MIN_SILENCE = 10.0
#: Manifests of ended jobs kept for their graphs where the store keeps none (the newest).
KEPT_MANIFESTS = 1000
#: How often a reader polling the store checks that the job's runtime is still there.
GONE_CHECK = 1.0


def final_agent_views(record: dict[str, Any], snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agent snapshots of a stored job, with the status an ended job's agents really have.

    When a job ends, agents whose state did not change are not written again; an agent the
    store still shows as live was stopped (or cancelled) with its job.
    """
    status = record.get("status")
    if status not in TERMINAL_STATUSES:
        return snapshots
    final = final_agent_status(str(status)).value
    for snap in snapshots:
        if snap.get("status") not in TERMINAL_AGENT_STATES:
            snap["status"] = final
            snap["mailbox_depth"] = 0
            snap.get("metadata", {})["paused"] = False
    return snapshots


def _window(ids: list[str], after: str | None, limit: int | None) -> slice:
    """The page of sorted ``ids``: those above ``after`` (all when ``None``), at most ``limit``."""
    start = 0 if after is None else bisect.bisect_right(ids, after)
    return slice(start, None if limit is None else start + limit)


def _process_here(node: Any) -> bool | None:
    """Whether ``node`` (``host:pid``, the default name) is a live process of this machine;
    ``None`` when the name is not such a name (nothing can be told from it)."""
    host, _, pid = str(node).rpartition(":")
    if host != os.uname().nodename or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive_here(node: Any) -> bool:
    """True when ``node`` names a process running on this machine."""
    return _process_here(node) is True


def dead_here(node: Any) -> bool:
    """True only when ``node`` names this machine and no process has its pid: the runtime is
    provably gone. Any other name proves nothing."""
    return _process_here(node) is False


def orphaned(record: dict[str, Any], heartbeat_interval: float = 2.0, now: float | None = None) -> str | None:
    """Why no runtime hosts this live job any more, or ``None`` when one does (or it ended).

    A suspended job says so; any other live job is taken for orphaned when its runtime's
    heartbeat is stale and that runtime is not a live process on this machine.
    """
    status = record.get("status")
    job_id = record.get("job_id")
    if status == JobStatus.SUSPENDED:
        if record.get("handoff"):
            return None  # handed to the other nodes of the cluster: one of them takes it up
        return f"job {job_id} was suspended by its runtime ({record.get('node')})"
    if status not in LIVE_STATUSES:
        return None
    beat = epoch(record.get("heartbeat_at") or record.get("updated_at"))
    silence = max(MIN_SILENCE, MISSED_BEATS * heartbeat_interval)
    if beat is not None and (now or time.time()) - beat <= silence:
        return None
    if _alive_here(record.get("node")):
        return None
    return f"the runtime hosting job {job_id} ({record.get('node')}) is gone"


class JobReader:
    """Answers reads for every job of ``store``; ``hosted`` jobs come from memory."""

    def __init__(
        self,
        store: Store,
        hosted: Mapping[str, JobRun] | None = None,
        *,
        flush: Callable[[], Awaitable[None]] | None = None,
        heartbeat_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.hosted: Mapping[str, JobRun] = hosted if hosted is not None else {}
        self._flush = flush
        self.heartbeat_interval = heartbeat_interval
        #: Manifests of jobs that ended here on a store that keeps none (the memory store).
        self._ended: OrderedDict[str, Manifest] = OrderedDict()

    def ended(self, job_id: str, manifest: Manifest) -> None:
        """Keep the manifest of a job that left (no copy: the same object), for its graph."""
        self._ended[job_id] = manifest
        while len(self._ended) > KEPT_MANIFESTS:
            self._ended.popitem(last=False)

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await call_store(self.store, fn, *args, **kwargs)

    async def flush(self) -> None:
        if self._flush is not None:
            await self._flush()

    async def stored(self, job_id: str) -> dict[str, Any]:
        record: dict[str, Any] | None = await self.read(self.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    # -- records --------------------------------------------------------------------

    async def inspect_job(self, job_id: str) -> dict[str, Any]:
        """The job record, with ``last_seq`` (its newest event's, to follow it from there); for a
        job whose runtime is gone, with ``orphaned`` saying so."""
        job = self.hosted.get(job_id)
        if job is not None:
            return {**job.record(), "last_seq": job.seq}
        record = await self.stored(job_id)
        record["last_seq"] = await self.read(self.store.count_events, job_id)
        why = orphaned(record, self.heartbeat_interval)
        if why is not None:
            record["orphaned"] = why
        return record

    async def inspect_agents(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Agent views sorted by id: those with an id above ``after``, at most ``limit``.

        Paging matters for big jobs: only the agents of the page are snapshotted, so a
        1e6-agent job does not cost a 1e6-snapshot answer per call.
        """
        job = self.hosted.get(job_id)
        if job is not None:
            ids = sorted(job.cells)
            return [job.cells[k].snapshot() for k in ids[_window(ids, after, limit)]]
        record = await self.stored(job_id)
        views = final_agent_views(record, await self.read(self.store.get_agents, job_id))
        ids = [str(v.get("agent_id")) for v in views]  # the store sorts them by id
        return views[_window(ids, after, limit)]

    async def inspect_agent(self, job_id: str, agent_id: str) -> dict[str, Any]:
        """One agent's view (``AgentNotFound`` when the job has no such agent)."""
        job = self.hosted.get(job_id)
        if job is not None:
            cell = job.cells.get(agent_id)
            if cell is None:
                raise AgentNotFound(job_id, agent_id)
            return cell.snapshot()
        for view in await self.inspect_agents(job_id):
            if view.get("agent_id") == agent_id:
                return view
        raise AgentNotFound(job_id, agent_id)

    async def events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        if job_id in self.hosted:
            await self.flush()
        else:
            await self.stored(job_id)
        events: list[dict[str, Any]] = await self.read(
            self.store.read_events, job_id, after=after, limit=limit
        )
        return events

    async def list_jobs(
        self,
        *,
        limit: int | None = None,
        include_terminal: bool = True,
        status: str | list[str] | tuple[str, ...] | frozenset[str] | None = None,
        cursor: str | None = None,
    ) -> list[dict[str, Any]]:
        """Job records, most recently updated first; each live one says whether its runtime is gone.

        ``status`` and ``cursor`` as in the store's ``list_jobs``, whose ``JobList`` this is.
        """
        await self.flush()
        jobs: list[dict[str, Any]] = await self.read(
            self.store.list_jobs, limit=limit, include_terminal=include_terminal, status=status, cursor=cursor
        )
        for record in jobs:
            if record.get("job_id") not in self.hosted:
                why = orphaned(record, self.heartbeat_interval)
                if why is not None:
                    record["orphaned"] = why
        return jobs

    async def graph(self, job_id: str) -> dict[str, Any]:
        """The job's agents and edges (:func:`~mirror_neuron.bundle.graph.graph_of`), with its id."""
        job = self.hosted.get(job_id)
        if job is not None:
            manifest = job.bundle.manifest
        else:
            await self.stored(job_id)
            manifest = self._ended.get(job_id) or await self._stored_manifest(job_id)
        return {"job_id": job_id, **graph_of(manifest)}

    async def _stored_manifest(self, job_id: str) -> Manifest:
        data = await self.read(self.store.get_blob, job_id, "manifest")
        if data is None:
            raise NotFound(f"job {job_id} has no stored manifest to draw its graph from")
        return await asyncio.to_thread(manifest_from_data, data, None)

    async def logs(self, job_id: str, agent_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """The kept executor runs of ``agent_id`` (stdout, stderr, exit code) above invocation ``after``."""
        job = self.hosted.get(job_id)
        if job is not None:
            await self.flush()
            if agent_id not in job.cells:
                raise AgentNotFound(job_id, agent_id)
        else:
            await self.stored(job_id)
        runs = await logs.read(self.store, job_id, agent_id, after=after)
        if not runs and job is None and agent_id not in await self._agent_ids(job_id):
            raise AgentNotFound(job_id, agent_id)  # none kept, because there is no such agent
        return runs

    async def _agent_ids(self, job_id: str) -> set[str]:
        return {node["id"] for node in (await self.graph(job_id))["nodes"]}

    # -- waiting ----------------------------------------------------------------------

    async def wait(
        self, job_id: str, timeout: float | None = None, *, idle_timeout: float | None = None
    ) -> dict[str, Any]:
        """The terminal record, as soon as the job is completed, failed or cancelled.

        Raises:
            JobNotFound: at once, for an id the store does not know.
            JobTimeout: ``timeout`` seconds passed first.
            JobOrphaned: the job's runtime is gone (or suspended it): it will not end by itself.
            JobStalled: with ``idle_timeout``, a job hosted elsewhere made no progress that long.
        """
        try:
            async with asyncio.timeout(timeout):
                job = self.hosted.get(job_id)
                if job is not None:
                    return await self._wait_hosted(job, idle_timeout)
                return await self._poll_terminal(job_id, idle_timeout)
        except TimeoutError:
            raise JobTimeout(job_id, timeout) from None

    async def _wait_hosted(self, job: JobRun, idle_timeout: float | None) -> dict[str, Any]:
        """Wait for a job hosted here; with ``idle_timeout``, fail it once it stalls that long."""
        while True:
            watch: list[asyncio.Future[Any]] = [asyncio.ensure_future(asyncio.shield(job.done)), job.gone]
            deadline = None
            if idle_timeout is not None:
                watch.append(job.stall.changed())
                if job.stall.since is not None:
                    deadline = job.stall.since + idle_timeout - time.monotonic()
            if deadline is None or deadline > 0:
                await asyncio.wait(watch, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
            watch[0].cancel()
            if job.done.done():
                return job.done.result()
            if job.fenced or job.handoff:  # it moved to another node: wait for it in the store
                return await self._poll_terminal(job.job_id, idle_timeout)
            if job.gone.done():
                raise JobOrphaned(job.job_id, job.gone.result())
            since = job.stall.since
            if idle_timeout is not None and since is not None and time.monotonic() - since >= idle_timeout:
                reason = (job.stall.info or {}).get("reason", "no progress")
                job.fail("job_runner", f"job made no progress for {idle_timeout:g}s (idle timeout): {reason}")
                return await asyncio.shield(job.done)

    def _check_host(self, record: dict[str, Any], checked: float) -> float:
        """Raise :class:`JobOrphaned` when no runtime hosts the job any more (checked at most
        every ``GONE_CHECK`` seconds, unless it says it is suspended); returns when checked."""
        if time.monotonic() - checked < GONE_CHECK and record.get("status") != JobStatus.SUSPENDED:
            return checked
        why = orphaned(record, self.heartbeat_interval)
        if why is not None:
            raise JobOrphaned(str(record.get("job_id")), why)
        return time.monotonic()

    async def _poll_terminal(self, job_id: str, idle_timeout: float | None) -> dict[str, Any]:
        delay = POLL_START
        checked = 0.0  # the first poll checks the host at once
        while True:
            record = await self.stored(job_id)
            if record.get("status") in TERMINAL_STATUSES:
                return record
            job = self.hosted.get(job_id)
            if job is not None:  # it started here meanwhile
                return await self._wait_hosted(job, idle_timeout)
            checked = self._check_host(record, checked)
            stalled = record.get("stalled")
            if idle_timeout is not None and isinstance(stalled, dict):
                since = epoch(stalled.get("since"))
                if since is not None and time.time() - since >= idle_timeout:
                    raise JobStalled(
                        job_id,
                        f"job {job_id} made no progress for {idle_timeout:g}s: {stalled.get('reason')}",
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    # -- following --------------------------------------------------------------------

    async def follow(self, job_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Events with ``seq > after`` as they happen, ending after the job's terminal event.

        Never skips or repeats an event: stored events are read first, then live ones are
        taken from the job (or, for a job hosted elsewhere, polled from the store), and
        anything at or below the last delivered ``seq`` is dropped. Raises
        :class:`JobOrphaned` once every event is out when the job's runtime is gone.
        """
        job = self.hosted.get(job_id)
        queue: asyncio.Queue[Any] | None = None
        if job is not None:
            queue = asyncio.Queue(maxsize=FOLLOW_BUFFER)
            job.listeners.append(queue)
        try:
            last = after
            for event in await self.events(job_id, after=after):
                last = event["seq"]
                yield event
            if queue is not None:
                while not (queue.empty() and getattr(queue, "lagging", False)):
                    item = await queue.get()
                    if item is None:
                        break
                    if item.seq > last:
                        last = item.seq
                        yield item.to_dict()
                # Ended, suspended or fell behind: read on from the store.
                if job is not None and job.terminal:
                    await self.flush()
            delay = POLL_START
            checked = 0.0
            while True:
                record = await self.read(self.store.get_job, job_id)
                batch = await self.read(self.store.read_events, job_id, after=last)
                for event in batch:
                    last = event["seq"]
                    yield event
                if record is None or (record.get("status") in TERMINAL_STATUSES and not batch):
                    return
                if not batch and job_id not in self.hosted:
                    checked = self._check_host(record, checked)
                delay = POLL_START if batch else min(delay * 1.5, POLL_MAX)
                await asyncio.sleep(delay)
        finally:
            if job is not None and queue is not None and queue in job.listeners:
                job.listeners.remove(queue)
