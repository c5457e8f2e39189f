"""Batched persistence: the hot path appends, the writer commits in groups.

Jobs mark themselves dirty; every ``flush_interval`` (or sooner when many events are
waiting) the writer collects new events, changed job records and changed agent
snapshots into one :class:`~mirror_neuron.store.base.WriteBatch`. Blocking stores are
written from a single worker thread, which keeps batches in order; when writes fall
behind, the scheduler is gated until the store catches up, so memory stays bounded.

A writer that cannot write is never silent, and one job cannot stop the others:

* A batch the store refuses (after :data:`WRITE_ATTEMPTS`) is logged and written again
  job by job. A job whose own part is refused (say a value that cannot be encoded) fails
  with the reason, in memory and, cut down to its failed record and events, in the
  store; the other jobs' parts are written and the writer goes on for everyone.
* Only when nothing at all can be written is the store down: the writer is *degraded*
  (:attr:`StoreWriter.degraded`), the runtime fails its jobs in memory, what could not be
  written is held back, in order, and retried with bounded backoff; the first write that
  succeeds makes the writer healthy again.
* :meth:`StoreWriter.commit` is what durable acknowledgements await: it raises
  :class:`~mirror_neuron.errors.StoreError` unless what was marked so far is stored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from .._time import iso
from ..errors import LeaseLost, StoreError
from ..store.base import Store, WriteBatch
from . import batches

if TYPE_CHECKING:
    from .scheduler import Scheduler


class Committable(Protocol):
    """A job as the writer sees it (:class:`~.job.JobRun` is one)."""

    job_id: str
    #: Queued for the next batch.
    dirty: bool
    #: Why the store refused this job's data (its writes are then kept to a safe minimum).
    store_error: str | None
    pending_events: list[Any]

    def collect(self, batch: WriteBatch) -> None:
        """Add everything that changed since the last batch to ``batch``."""

    def storage_failed(self, reason: str) -> None: ...

    def fence(self, reason: str) -> None:
        """Another node owns the job now: stop it here without writing it again."""


log = logging.getLogger("mirror_neuron.store")

MAX_IN_FLIGHT = 2
#: A failing batch is tried this many times (after the store's own retries), 0.1 s, 0.4 s apart.
WRITE_ATTEMPTS = 3
RETRY_DELAY = 0.1
#: While degraded, held-back writes are retried after this long, doubling up to the cap.
DEGRADED_RETRY_FIRST = 0.25
DEGRADED_RETRY_MAX = 5.0


@dataclass(frozen=True, slots=True)
class Degraded:
    """Why the store takes no writes, and since when (epoch seconds)."""

    reason: str
    since: float


@dataclass(slots=True)
class Outcome:
    """What became of one batch, reported from the writer thread to the event loop."""

    #: Jobs whose own data the store refused: job id → reason (they fail).
    failed: dict[str, str] = field(default_factory=dict)
    #: Jobs whose lease another node claimed: their parts were dropped (they stop here).
    fenced: list[str] = field(default_factory=list)
    #: Set when nothing could be written: the store is down and this batch is held back.
    unwritten: WriteBatch | None = None
    error: str | None = None


@dataclass(slots=True)
class _Held:
    """A batch held back while the store is down, with the jobs it belongs to."""

    serial: int
    batch: WriteBatch
    jobs: list[Committable]


class StoreWriter:
    def __init__(self, store: Store, scheduler: Scheduler, interval: float, max_events: int) -> None:
        self.store = store
        self.scheduler = scheduler
        self.interval = interval
        self.max_events = max_events
        self._dirty: list[Committable] = []
        self._pending_events = 0
        self._timer: asyncio.TimerHandle | None = None
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mn-store") if store.blocking else None
        )
        self._in_flight: list[asyncio.Future[Outcome]] = []
        self._last: asyncio.Future[Outcome] | None = None
        #: Set while the store takes no writes at all (see the module docstring).
        self.degraded: Degraded | None = None
        #: Set when healthy, cleared while degraded: ``await writer.healthy.wait()``.
        self.healthy = asyncio.Event()
        self.healthy.set()
        #: Called on the event loop when the store fails for good (and on each failed retry).
        self.on_error: Callable[[BaseException], None] | None = None
        self._serials = itertools.count()
        self._held: list[_Held] = []
        self._retry_delay = DEGRADED_RETRY_FIRST
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_task: asyncio.Task[bool] | None = None
        self._retry_lock = asyncio.Lock()
        #: Set when a batch failed jobs (their failure is still to be written), for flush().
        self._failed_jobs = False
        #: Writer-thread state: why the store is down (later batches must not overtake held ones).
        self._down: str | None = None

    # -- the hot path -----------------------------------------------------------------

    def mark(self, job: Committable) -> None:
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

    def _collect(self) -> tuple[WriteBatch, list[Committable]]:
        batch = WriteBatch()
        jobs, self._dirty = self._dirty, []
        for job in jobs:
            job.dirty = False
            try:
                job.collect(batch)
            except Exception as exc:  # a bug must fail its job, never stop every write
                log.exception("collecting the changes of job %s failed", job.job_id)
                job.storage_failed(f"internal error while saving the job: {exc!r}")
        return batch, jobs

    def _start_flush(self) -> asyncio.Future[Outcome]:
        """Collect what is dirty now and hand it to the store; returns the write's future."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, jobs = self._collect()
        loop = asyncio.get_running_loop()
        if self.degraded is not None:  # the store is down: hold it back, in order, for the retry
            if batch:
                self._held.append(_Held(next(self._serials), batch, jobs))
            return _done(loop)
        serial = next(self._serials)
        if self._held:  # held back while a retry ran: they go first
            held_batch, held_jobs, serial = self._take_held()
            batch, jobs = batches.merge([held_batch, batch]), held_jobs + jobs
        if not batch:
            return self._last if self._last is not None else _done(loop)
        if self._executor is None:
            outcome = self._commit(batch, attempts=1)
            if not outcome.failed and outcome.unwritten is None:
                fut = _done(loop)  # written: nothing to settle, and no turn of the loop to wait
            else:  # settled on the next turn: failing jobs here would re-enter the writer
                fut = loop.create_future()
                loop.call_soon(self._settle_inline, fut, outcome, serial, jobs)
        else:
            fut = loop.run_in_executor(self._executor, self._commit, batch, WRITE_ATTEMPTS)
            self._in_flight.append(fut)
            fut.add_done_callback(lambda f: self._on_written(f, serial, jobs))
            if len(self._in_flight) >= MAX_IN_FLIGHT and self.scheduler.gate is None:
                self.scheduler.gate = cast("asyncio.Future[None]", fut)  # awaited, never read
        self._last = fut
        return fut

    # -- the writer thread --------------------------------------------------------------

    def _commit(self, batch: WriteBatch, attempts: int, retrying: bool = False) -> Outcome:
        """Write ``batch``; failing that, job by job. Runs in the writer thread (never raises)."""
        if self._down is not None and not retrying:
            return Outcome(unwritten=batch, error=self._down)
        fenced: list[str] = []
        error = self._write(batch, attempts)
        while isinstance(error, LeaseLost):  # a deposed owner's part is dropped, never written
            fenced += error.job_ids
            batch = batches.without(batch, error.job_ids)
            log.warning("%s; they stop here without writing", error)
            error = self._write(batch, attempts) if batch else None
        if error is None:
            self._down = None
            return Outcome(fenced=fenced)
        log.error("store write failed after %d attempt(s), writing job by job: %s", attempts, error)
        try:
            outcome = self._isolate(batch, error)
            outcome.fenced += fenced
        except Exception as exc:  # a bug here must not kill the writer: hold the batch, stay loud
            log.exception("writing job by job failed")
            outcome = Outcome(unwritten=batch, error=f"{error} (then: {exc!r})")
        self._down = outcome.error if outcome.unwritten is not None else None
        return outcome

    def _write(self, batch: WriteBatch, attempts: int) -> Exception | None:
        delay = RETRY_DELAY
        for attempt in range(1, attempts + 1):
            try:
                self.store.write_batch(batch)
                return None
            except Exception as exc:
                if attempt == attempts or isinstance(exc, LeaseLost):
                    return exc
                time.sleep(delay)  # in the writer thread: the event loop is not blocked
                delay *= 4
        return None

    def _isolate(self, batch: WriteBatch, error: Exception) -> Outcome:
        """Write each job's part alone, an unencodable part cut down; the store is down if nothing goes in.

        A part the store refused although it can be encoded is the store's problem, not the
        job's: it is held back with the rest and retried, never failed.
        """
        parts = batches.split(batch)
        refused = {job_id: exc for job_id, part in parts.items() if (exc := self._write(part, 1))}
        fenced = [job_id for job_id, exc in refused.items() if isinstance(exc, LeaseLost)]
        for job_id in fenced:
            del refused[job_id], parts[job_id]
        bad = {job_id: why for job_id in refused if (why := batches.unencodable(parts[job_id]))}
        for job_id in [j for j in refused if j not in bad]:  # good data: the store's moment, try again
            if self._write(parts[job_id], WRITE_ATTEMPTS) is None:
                del refused[job_id]
        if any(job_id not in bad for job_id in refused):  # still refused: an outage, hold it all back
            unwritten = batches.merge([parts[job_id] for job_id in refused])
            return Outcome(unwritten=unwritten, error=str(next(iter(refused.values()))))
        store_up = len(refused) < len(parts) or bool(fenced)  # a fencing refusal is an answer
        failed: dict[str, str] = {}
        for job_id, why in bad.items():
            failed[job_id] = (
                f"the store could not write this job's data: a value cannot be encoded as JSON: {why}"
            )
            minimal = batches.rescue(parts[job_id], job_id, failed[job_id])
            rescue_error = self._write(minimal, 1) if minimal else self._probe(job_id)
            if rescue_error is None:
                store_up = True
            else:
                error = rescue_error
        if not store_up:
            return Outcome(unwritten=batch, error=str(error))
        for job_id, reason in failed.items():
            log.error("job %s fails: %s", job_id, reason)
        return Outcome(failed=failed, fenced=fenced)

    def _probe(self, job_id: str) -> Exception | None:
        """Whether the store answers at all, when a refused part leaves nothing to write."""
        try:
            self.store.get_job(job_id)
        except Exception as exc:
            return exc
        return None

    # -- back on the event loop ------------------------------------------------------------

    def _on_written(self, fut: asyncio.Future[Outcome], serial: int, jobs: list[Committable]) -> None:
        self._in_flight.remove(fut)
        gate = self.scheduler.gate
        if gate is not None and gate.done() and len(self._in_flight) < MAX_IN_FLIGHT:
            self.scheduler.gate = None
        if not fut.cancelled() and fut.exception() is None:
            self._settle(fut.result(), serial, jobs)

    def _settle_inline(
        self, fut: asyncio.Future[Outcome], outcome: Outcome, serial: int, jobs: list[Committable]
    ) -> None:
        self._settle(outcome, serial, jobs)
        fut.set_result(outcome)

    def _settle(self, outcome: Outcome, serial: int, jobs: list[Committable]) -> None:
        """Apply a batch's outcome: fail the jobs the store refused, hold back what was not written."""
        if outcome.fenced:
            fenced = set(outcome.fenced)
            for one in jobs:
                if one.job_id in fenced:
                    one.fence("the store refused its write: another node claimed the job")
        if outcome.failed:
            by_id = {job.job_id: job for job in jobs}
            for job_id, reason in outcome.failed.items():
                job = by_id.get(job_id)
                if job is not None:
                    job.storage_failed(reason)
                    self._failed_jobs = True
        if outcome.unwritten is not None:
            self._held.append(_Held(serial, outcome.unwritten, jobs))
            self._degrade(outcome.error or "the store refused every write")
        elif self.degraded is not None:
            self._recovered()

    def _degrade(self, reason: str) -> None:
        if self.degraded is None:
            self.degraded = Degraded(reason, time.time())
            self.healthy.clear()
            self._retry_delay = DEGRADED_RETRY_FIRST
            log.error(
                "the store takes no writes, the runtime is degraded (writes are held back and retried): %s",
                reason,
            )
        else:
            self.degraded = Degraded(reason, self.degraded.since)
        if self.on_error is not None:
            self.on_error(StoreError(reason))
        self._schedule_retry()

    def _recovered(self) -> None:
        assert self.degraded is not None
        log.warning(
            "the store takes writes again after %.1fs; the runtime is healthy",
            time.time() - self.degraded.since,
        )
        self.degraded = None
        self.healthy.set()
        if self._held:  # held back while the retry ran: write them now, still in order
            self._start_flush()

    # -- retries while degraded ------------------------------------------------------------

    def _schedule_retry(self) -> None:
        if self._retry_timer is not None or (self._retry_task is not None and not self._retry_task.done()):
            return
        loop = asyncio.get_running_loop()
        self._retry_timer = loop.call_later(self._retry_delay, self._on_retry_timer)
        self._retry_delay = min(self._retry_delay * 2, DEGRADED_RETRY_MAX)

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._retry_task = asyncio.get_running_loop().create_task(self.retry(), name="mn-store-retry")

    async def retry(self) -> bool:
        """Write what was held back since the store failed, now; True once the writer is healthy."""
        async with self._retry_lock:
            if self._retry_timer is not None:
                self._retry_timer.cancel()
                self._retry_timer = None
            while self._in_flight:  # earlier batches first: they come back held, in their place
                await asyncio.gather(*list(self._in_flight), return_exceptions=True)
            if self.degraded is None:
                return True
            batch, jobs, serial = self._take_held()
            if self._executor is None:
                outcome = self._commit(batch, 1, True)
            else:
                loop = asyncio.get_running_loop()
                outcome = await loop.run_in_executor(self._executor, self._commit, batch, 1, True)
            self._settle(outcome, serial, jobs)
            return self.degraded is None

    def _take_held(self) -> tuple[WriteBatch, list[Committable], int]:
        """Everything held back, as one batch in its original order, its jobs and first serial."""
        held = sorted(self._held, key=lambda h: h.serial)
        self._held = []
        batch = batches.merge(h.batch for h in held)
        jobs = [job for h in held for job in h.jobs]
        return batch, jobs, held[0].serial if held else next(self._serials)

    # -- waiting -----------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything marked so far and wait until the store has it (or has refused it).

        A job the store refused fails meanwhile: its failure is written before this returns.
        """
        await self._start_flush()
        while True:
            while self._in_flight:
                await asyncio.gather(*list(self._in_flight))
            if not self._failed_jobs:
                return
            self._failed_jobs = False
            await self._start_flush()

    async def commit(self, job: Committable) -> None:
        """Flush, then raise StoreError unless what was marked for ``job`` is stored.

        For acknowledgements that promise durability (a sent message, a status change):
        they must fail rather than be given for data the store does not have.
        """
        self.check_writable()
        await self.flush()
        self.check_writable()
        if job.store_error is not None:
            raise StoreError(f"job {job.job_id}: {job.store_error}")

    def check_writable(self) -> None:
        """Raise StoreError while degraded: nothing written now would be stored."""
        state = self.degraded
        if state is not None:
            raise StoreError(f"the store takes no writes (degraded since {iso(state.since)}): {state.reason}")

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        """Run a store call in the writer's thread, ordered after queued batches."""
        if self._executor is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Flush; if the store is down, try what was held back once more, and say what is lost."""
        await self.flush()
        if self.degraded is not None and not await self.retry():
            jobs = sorted({job.job_id for h in self._held for job in h.jobs})
            log.error(
                "closing with the store down: the last changes of %d job(s) were not stored (%s): %s",
                len(jobs),
                ", ".join(jobs),
                self.degraded.reason if self.degraded else "",
            )
        if self._retry_timer is not None:
            self._retry_timer.cancel()
        if self._retry_task is not None and not self._retry_task.done():
            self._retry_task.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[Outcome]:
    fut: asyncio.Future[Outcome] = loop.create_future()
    fut.set_result(Outcome())
    return fut
