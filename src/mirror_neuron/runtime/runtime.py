"""The runtime: hosts jobs on one asyncio loop, over one store.

``async with Runtime(config) as rt: job_id = await rt.submit("examples/research_flow")``.
Jobs hosted here are answered from memory; jobs hosted by another process (another
``mn run``) are answered from the shared store, so every call works on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from .._time import now_iso
from ..agents import preflight
from ..bundle import load_bundle
from ..bundle.model import Bundle
from ..config import Config
from ..errors import JobNotFound, JobTimeout, StoreError
from ..execution import LeaseManager
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
        for task in (self._driver, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._control is not None:
            await self._control.close()
        await self.writer.close()
        self.store.close()
        if self._driver is not None:
            _restore_gc(self.config.gc_threshold)

    def _store_failed(self, exc: BaseException) -> None:
        """The store refused writes for good: end every job here (its last commit stays recoverable)."""
        reason = (
            f"the store failed, so the job cannot go on safely: {exc}; its last committed state is kept "
            "and `mn job recover` resumes it once the store works again"
        )
        for job in list(self.jobs.values()):
            job.fail("job_runner", reason)

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
        bundle = source if isinstance(source, Bundle) else load_bundle(source)
        preflight(bundle, self.config)
        job_id = job_id or new_job_id(bundle.manifest.graph_id)
        job = JobRun(self, bundle, job_id)
        # A job that may outlive this process is recoverable from its stored manifest; the
        # manifest is committed with the pending record, before submit returns.
        blobs = {job_id: {"manifest": bundle.manifest.to_dict()}} if self.store.blocking else {}
        try:
            await self.writer.run_blocking(self._create, job.record(), blobs)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"failed to persist initial job: {exc}") from exc
        job.record_dirty = False
        self.jobs[job_id] = job
        job.start()
        return job_id

    def _create(self, record: dict[str, Any], blobs: dict[str, dict[str, Any]]) -> None:
        self.store.create_job(record)
        if blobs:
            self.store.write_batch(WriteBatch(blobs=blobs))

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

    async def inspect_agents(self, job_id: str) -> list[dict[str, Any]]:
        job = self.jobs.get(job_id)
        if job is not None:
            return [job.cells[k].snapshot() for k in sorted(job.cells)]
        record = await self._read(self.store.get_job, job_id)
        if record is None:
            raise JobNotFound(job_id)
        return final_agent_views(record, await self._read(self.store.get_agents, job_id))

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
