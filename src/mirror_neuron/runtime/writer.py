"""Batched persistence: the hot path appends, the writer commits in groups.

Jobs mark themselves dirty; every ``flush_interval`` (or sooner when many events are
waiting) the writer collects new events, changed job records and changed agent
snapshots into one :class:`~mirror_neuron.store.base.WriteBatch`. Blocking stores are
written from a single worker thread, which keeps batches in order; when writes fall
behind, the scheduler is gated until the store catches up, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..store.base import Store, WriteBatch

if TYPE_CHECKING:
    from .job import JobRun
    from .scheduler import Scheduler

MAX_IN_FLIGHT = 2
#: A failing batch is tried this many times (after the store's own retries), 0.1 s, 0.4 s apart.
WRITE_ATTEMPTS = 3
RETRY_DELAY = 0.1


class StoreWriter:
    def __init__(self, store: Store, scheduler: Scheduler, interval: float, max_events: int) -> None:
        self.store = store
        self.scheduler = scheduler
        self.interval = interval
        self.max_events = max_events
        self._dirty: list[JobRun] = []
        self._pending_events = 0
        self._timer: asyncio.TimerHandle | None = None
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mn-store") if store.blocking else None
        )
        self._in_flight: list[asyncio.Future[None]] = []
        self._last: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        #: Called (on the event loop) once when the store has failed for good.
        self.on_error: Callable[[BaseException], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, job: JobRun) -> None:
        if not job.dirty:
            job.dirty = True
            self._dirty.append(job)
        if len(job.pending_events) >= self.max_events:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._start_flush()

    def _collect(self) -> WriteBatch:
        batch = WriteBatch()
        jobs, self._dirty = self._dirty, []
        for job in jobs:
            job.dirty = False
            if job.pending_events:
                batch.events[job.job_id] = job.pending_events
                job.pending_events = []
            snaps = []
            mail: list[tuple[str, int, dict[str, Any]]] = []
            consumed: dict[str, int] = {}
            for cell in job.cells.values():
                if cell.dirty and not job.keep_snapshots:
                    cell.dirty = False
                    snaps.append(cell.snapshot())
                    mail += cell.unsaved_log()
                    if cell.appended > cell.persisted and not job.terminal:
                        mail += cell.unsaved_mail()
                    upto = cell.appended if job.terminal else cell.taken
                    if upto > cell.pruned:
                        consumed[cell.agent_id] = cell.pruned = upto
            if snaps:
                batch.agents[job.job_id] = snaps
            if mail:
                batch.messages[job.job_id] = mail
            if consumed:
                batch.consumed[job.job_id] = consumed
            if job.blobs:
                batch.blobs[job.job_id], job.blobs = job.blobs, {}
            if job.record_dirty:
                job.record_dirty = False
                batch.jobs.append(job.record())
        return batch

    def _start_flush(self) -> asyncio.Future[None]:
        """Collect what is dirty now and hand it to the store; returns the write's future."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._collect()
        loop = self._loop = asyncio.get_running_loop()
        if self.error is not None:  # the store failed: keep what it has, write nothing more
            return _done(loop)
        if not batch:
            return self._last if self._last is not None else _done(loop)
        if self._executor is None:
            fut: asyncio.Future[None] = loop.create_future()
            try:
                self.store.write_batch(batch)
                fut.set_result(None)
            except Exception as exc:
                self._record_error(exc)
                fut.set_result(None)
        else:
            fut = loop.run_in_executor(self._executor, self._write, batch)
            self._in_flight.append(fut)
            fut.add_done_callback(self._on_written)
            if len(self._in_flight) >= MAX_IN_FLIGHT and self.scheduler.gate is None:
                self.scheduler.gate = fut
        self._last = fut
        return fut

    def _write(self, batch: WriteBatch) -> None:
        delay = RETRY_DELAY
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self.store.write_batch(batch)
                return
            except Exception as exc:
                if attempt == WRITE_ATTEMPTS:
                    self._record_error(exc)
                    return
                time.sleep(delay)  # in the writer thread: the event loop is not blocked
                delay *= 4

    def _record_error(self, exc: BaseException) -> None:
        """The store refused a batch for good: stop writing and tell the runtime.

        Batches are atomic, so the store still holds the last consistent commit of every
        job; the runtime fails its jobs in memory, and they can be recovered from that
        commit once the store is repaired.
        """
        if self.error is None:
            self.error = exc
            if self.on_error is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self.on_error, exc)

    def _on_written(self, fut: asyncio.Future[Any]) -> None:
        self._in_flight.remove(fut)
        gate = self.scheduler.gate
        if gate is not None and gate.done() and len(self._in_flight) < MAX_IN_FLIGHT:
            self.scheduler.gate = None

    async def flush(self) -> None:
        """Write everything marked so far and wait until the store has it."""
        await self._start_flush()
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight))

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        """Run a store call in the writer's thread, ordered after queued batches."""
        if self._executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        await self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    fut: asyncio.Future[None] = loop.create_future()
    fut.set_result(None)
    return fut
