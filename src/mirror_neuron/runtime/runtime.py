"""The runtime: hosts jobs on one asyncio loop, over one store.

``async with Runtime(config) as rt: job_id = await rt.submit("examples/research_flow")``.
Jobs hosted here are answered from memory; jobs hosted by another process (another
``mn run``) are answered from the shared store, so every call works on either.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from .._time import iso, now_iso
from ..agents import preflight
from ..bundle import load_bundle
from ..bundle.model import Bundle
from ..config import Config
from ..errors import JobNotFound, JobTimeout, StoreError
from ..execution import LeaseManager, UnsafeTempDir, sweep_stale_runs
from ..ids import job_id as new_job_id
from ..store import MemoryStore, open_store
from ..store.base import TERMINAL_STATUSES, Store, WriteBatch
from . import remote
from .job import JobRun, final_agent_views
from .operations import Operations
from .scheduler import Scheduler
from .writer import StoreWriter

POLL_START = 0.01
#: Events buffered per live follower before it falls back to reading the store.
FOLLOW_BUFFER = 10_000
POLL_MAX = 0.25

_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


def _tune_gc(threshold: int | None) -> None:
    global _gc_users, _gc_saved
    if threshold is None:
        return
    if _gc_users == 0:
        _gc_saved = gc.get_threshold()
        if _gc_saved[0] < threshold:
            gc.set_threshold(threshold, _gc_saved[1], _gc_saved[2])
    _gc_users += 1


def _restore_gc(threshold: int | None) -> None:
    global _gc_users
    if threshold is None:
        return
    _gc_users -= 1
    if _gc_users == 0 and _gc_saved is not None:
        gc.set_threshold(*_gc_saved)


def _window(ids: list[str], after: str | None, limit: int | None) -> slice:
    """The page of sorted ``ids``: those above ``after`` (all when ``None``), at most ``limit``."""
    start = 0 if after is None else bisect.bisect_right(ids, after)
    return slice(start, None if limit is None else start + limit)


class Runtime(Operations):
    """Hosts jobs. Use as an async context manager, or call :meth:`start` / :meth:`close`."""

    def __init__(self, config: Config | None = None, *, store: Store | None = None) -> None:
        self.config = config or Config()
        self.store: Store = store if store is not None else open_store(self.config.store_url)
        self.jobs: dict[str, JobRun] = {}
        #: Runtime-wide services agents use; the executor lease manager bounds concurrent runs.
        self.services: dict[str, Any] = {"leases": LeaseManager.from_config(self.config)}
        self.scheduler = Scheduler(self.config.agent_batch)
        self.writer = StoreWriter(
            self.store, self.scheduler, self.config.flush_interval, self.config.flush_max_events
        )
        self.writer.on_error = self._store_failed
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False
        self._control: remote.ControlServer | None = None

    @property
    def control_endpoint(self) -> str | None:
        """Where other processes reach this runtime's jobs (None for in-memory runtimes)."""
        return self._control.endpoint if self._control is not None else None

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> Runtime:
        if self._driver is None:
            if self.config.control and not isinstance(self.store, MemoryStore):
                self._control = remote.ControlServer(self._serve_control)
                await self._control.start()
            # What a runtime killed with -9 left in the temp dir (staging trees, its /etc copy).
            # An unsafe temp dir is not touched; executor runs report it when they need it.
            with contextlib.suppress(UnsafeTempDir):
                await asyncio.to_thread(sweep_stale_runs, self.config.temp_dir)
            _tune_gc(self.config.gc_threshold)
            self._driver = asyncio.create_task(self.scheduler.run(), name="mn-scheduler")
            self._heartbeat = asyncio.create_task(self._beat(), name="mn-heartbeat")
        return self

    async def __aenter__(self) -> Runtime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, *, keep_jobs: bool = False) -> None:
        """Stop hosting, flush everything and close the store.

        Live jobs fail with a clear reason, or with ``keep_jobs`` (``mn serve``) are
        suspended at their last message boundary, running scripts stopped, so that the next
        runtime on this store recovers them.
        """
        if self._closed:
            return
        self._closed = True
        for job in list(self.jobs.values()):
            if keep_jobs:
                await job.suspend()
            else:
                job.fail("job_runner", "runtime stopped before the job finished")
        if keep_jobs:
            for task in self._tasks:  # e.g. waiters on suspended jobs, which will not end here
                task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for background in (self._driver, self._heartbeat):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        if self._control is not None:
            await self._control.close()
        await self.writer.close()
        self.store.close()
        if self._driver is not None:
            _restore_gc(self.config.gc_threshold)

    def _store_failed(self, exc: BaseException) -> None:
        """The store takes no writes (the writer is degraded): end every job here, in memory.

        Their failure is written when the store works again (the writer retries); should
        this runtime be gone by then, the last commit of each job stays and can be recovered.
        """
        reason = (
            f"the store failed, so the job cannot go on safely: {exc}; this failure is stored once the "
            "store works again, or else its last committed state is kept and `mn job recover` resumes it"
        )
        for job in list(self.jobs.values()):
            job.fail("job_runner", reason)

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"}``, or ``"degraded"`` with the reason and since when (ISO-8601).

        Degraded means the store takes no writes at all: jobs here have failed, and held-back
        writes are retried until one succeeds (see :class:`StoreWriter`).
        """
        state = self.writer.degraded
        if state is None:
            return {"status": "ok"}
        return {"status": "degraded", "reason": state.reason, "since": iso(state.since)}

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a runtime-owned background task (kept referenced until done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def job_finished(self, job: JobRun) -> None:
        self.jobs.pop(job.job_id, None)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            stamp = now_iso()
            for job in self.jobs.values():
                job.heartbeat_at = stamp
                job.record_dirty = True
                self.writer.mark(job)

    # -- jobs -----------------------------------------------------------------------

    async def submit(self, source: Any, *, job_id: str | None = None) -> str:
        """Validate and start a job; returns its id once the ``pending`` record is stored."""
        if self._driver is None:
            await self.start()
        # Parsing and validating a big manifest takes seconds: never on the event loop.
        bundle = source if isinstance(source, Bundle) else await asyncio.to_thread(load_bundle, source)
        await asyncio.to_thread(preflight, bundle, self.config)  # stats upload sources, may probe bwrap
        job_id = job_id or new_job_id(bundle.manifest.graph_id)
        job = JobRun(self, bundle, job_id)
        try:
            await self.writer.run_blocking(
                self._create, job.record(), bundle if self.store.blocking else None
            )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"failed to persist initial job: {exc}") from exc
        job.record_dirty = False
        self.jobs[job_id] = job
        job.start()
        return job_id

    def _create(self, record: dict[str, Any], bundle: Bundle | None) -> None:
        """Store the pending record and, for a job that may outlive this process, its manifest.

        The manifest is committed with the pending record, before submit returns, so the job is
        recoverable from the store (built here, in the writer's thread: big manifests take time).
        """
        self.writer.check_writable()  # a degraded runtime takes no new jobs: it could not store them
        self.store.create_job(record)
        if bundle is not None:
            manifest = bundle.manifest.to_dict()
            self.store.write_batch(WriteBatch(blobs={record["job_id"]: {"manifest": manifest}}))

    async def run(self, source: Any, *, timeout: float | None = None) -> tuple[str, dict[str, Any]]:
        """Submit and wait: ``(job_id, terminal job record)``."""
        job_id = await self.submit(source)
        return job_id, await self.wait(job_id, timeout)

    async def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The terminal job record, as soon as the job is completed, failed or cancelled."""
        job = self.jobs.get(job_id)
        try:
            async with asyncio.timeout(timeout):
                if job is not None:
                    return await asyncio.shield(job.done)
                return await self._poll_terminal(job_id)
        except TimeoutError:
            raise JobTimeout(job_id, timeout) from None

    async def _poll_terminal(self, job_id: str) -> dict[str, Any]:
        delay = POLL_START
        while True:
            record = await self._read(self.store.get_job, job_id)
            if record is None:
                raise JobNotFound(job_id)
            if record.get("status") in TERMINAL_STATUSES:
                return record
            job = self.jobs.get(job_id)
            if job is not None:  # it started here meanwhile
                return await asyncio.shield(job.done)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    async def _read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.store.blocking:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    # -- inspection -----------------------------------------------------------------

    async def inspect_job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is not None:
            return job.record()
        record = await self._read(self.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    async def inspect_agents(
        self, job_id: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Agent views sorted by id: those with an id above ``after``, at most ``limit``.

        Paging matters for big jobs: only the agents of the page are snapshotted, so a
        1e6-agent job does not cost a 1e6-snapshot answer per call.
        """
        job = self.jobs.get(job_id)
        if job is not None:
            ids = sorted(job.cells)
            return [job.cells[k].snapshot() for k in ids[_window(ids, after, limit)]]
        record = await self._read(self.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        views = final_agent_views(record, await self._read(self.store.get_agents, job_id))
        ids = [str(v.get("agent_id")) for v in views]  # the store sorts them by id
        return views[_window(ids, after, limit)]

    async def events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job is not None:
            await self.writer.flush()
        elif await self._read(self.store.get_job, job_id) is None:
            raise JobNotFound(job_id)
        return await self._read(self.store.read_events, job_id, after=after, limit=limit)

    async def follow(self, job_id: str, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Events with ``seq > after`` as they happen, ending after the job's terminal event.

        Never skips or repeats an event: stored events are read first, then live ones are
        taken from the job (or, for a job hosted elsewhere, polled from the store), and
        anything at or below the last delivered ``seq`` is dropped.
        """
        job = self.jobs.get(job_id)
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
                        return
                    if item.seq > last:
                        last = item.seq
                        yield item.to_dict()
                # Fell behind: the job dropped this follower; read on from the store.
            delay = POLL_START
            while True:
                record = await self._read(self.store.get_job, job_id)
                batch = await self._read(self.store.read_events, job_id, after=last)
                for event in batch:
                    last = event["seq"]
                    yield event
                if record is None or (record.get("status") in TERMINAL_STATUSES and not batch):
                    return
                delay = POLL_START if batch else min(delay * 1.5, POLL_MAX)
                await asyncio.sleep(delay)
        finally:
            if job is not None and queue is not None and queue in job.listeners:
                job.listeners.remove(queue)

    async def list_jobs(
        self, *, limit: int | None = None, include_terminal: bool = True
    ) -> list[dict[str, Any]]:
        await self.writer.flush()
        return await self._read(self.store.list_jobs, limit=limit, include_terminal=include_terminal)
