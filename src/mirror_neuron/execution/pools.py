"""Executor pools and leases: how many scripts may run at once, per named pool, shared fairly by jobs.

One :class:`LeaseManager` per runtime (pools are not cluster-wide, as in the original), and
``mn serve`` runs many tenants' jobs in that one runtime, so a pool is shared between jobs:

* **Fair queueing.** Waiting requests are grouped by job (the ``owner`` of the request). When
  slots free up, the next grant goes to the waiting job that holds the fewest slots of the pool;
  ties go to the job that has gone longest without being granted or giving slots back (for a
  newcomer: since its oldest waiting request). A job that just had its turn goes to the back:
  round-robin across jobs, so a job with a backlog of 100 runs cannot make a newly arrived job
  wait behind all of them. Within one job requests are served in FIFO order.
* **No starvation of big requests.** If the chosen request does not fit, the pool *reserves*
  it: slots that free up are held for it and nothing else is granted (no backfilling) until it
  is granted or cancelled. With a single job this is the original FIFO with head-of-line blocking.
* **Optional per-job cap.** ``max_job_share`` (a fraction of each pool's capacity, 1.0 = no
  cap) bounds what one job may hold *while another job is waiting*; alone, a job may use the
  whole pool (work-conserving). The cap is checked when a request is chosen, so a request
  reserved while its job was alone is still granted if other jobs arrive meanwhile.

Each grant costs O(number of waiting jobs); a cancelled waiter frees its grant (or its place).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ids import lease_id as new_lease_id
from .errors import LeaseError

if TYPE_CHECKING:
    from ..config import Config

#: Owner of requests that name no job (direct callers, tests): they share one FIFO.
ANONYMOUS = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """Slots held in one pool; give it back with :meth:`LeaseManager.release`."""

    lease_id: str
    pool: str
    slots: int
    queue_wait_ms: int
    requested_at_ms: int
    acquired_at_ms: int
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The job the slots are counted against (not in :meth:`to_dict`: the metadata names the job).
    owner: str = ANONYMOUS

    def to_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "pool": self.pool,
            "slots": self.slots,
            "queue_wait_ms": self.queue_wait_ms,
            "requested_at_ms": self.requested_at_ms,
            "acquired_at_ms": self.acquired_at_ms,
            "metadata": dict(self.metadata),
        }


@dataclass(slots=True, eq=False)
class _Waiter:
    """One request waiting for slots (compared by identity)."""

    owner: str
    slots: int
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Job:
    """One job's part in a pool: what it holds, what it waits for, when it last had its turn."""

    #: The pool's clock when the job appeared, or was last granted or gave slots back; ties go
    #: to the smallest. Taken on appearing too, so a job that comes and goes between its runs
    #: cannot jump ahead of one that has waited all along.
    stamp: int
    held: int = 0
    queue: deque[_Waiter] = field(default_factory=deque)


@dataclass(slots=True)
class _Pool:
    capacity: int
    #: Most slots one job may hold while another job waits (``capacity`` when uncapped).
    job_cap: int
    in_use: int = 0
    #: Every job holding or waiting for slots; idle jobs are forgotten.
    jobs: dict[str, _Job] = field(default_factory=dict)
    #: The jobs with waiting requests (a subset of ``jobs``), so a grant scans only them.
    waiting: dict[str, _Job] = field(default_factory=dict)
    #: The chosen request that did not fit: freed slots are held for it.
    reserved: _Waiter | None = None
    active: dict[str, Lease] = field(default_factory=dict)
    #: Counts arrivals of jobs, grants and releases: the order of the jobs' stamps.
    clock: int = 0


class LeaseManager:
    """Grants leases on named pools of executor slots, fairly across jobs (asyncio, one event loop)."""

    def __init__(self, capacities: Mapping[str, int], max_job_share: float = 1.0) -> None:
        """``max_job_share``: the fraction of a pool one job may hold while others wait (0 < share <= 1)."""
        if isinstance(max_job_share, bool) or not 0 < max_job_share <= 1:
            raise ValueError(f"max_job_share must be a fraction in (0, 1], got {max_job_share!r}")
        self.max_job_share = float(max_job_share)
        self._pools = {
            name: _Pool(capacity, _job_cap(capacity, self.max_job_share))
            for name, capacity in capacities.items()
        }

    @classmethod
    def from_config(cls, config: Config) -> LeaseManager:
        """``default`` = ``executor_max_concurrency``, plus ``pool_capacities`` (may override it);
        the per-job cap is ``pool_job_share`` (1.0, no cap, when the config has none)."""
        return cls(config.pools(), getattr(config, "pool_job_share", 1.0))

    def check(self, pool: str, slots: Any) -> None:
        """Raise :class:`LeaseError` if ``slots`` on ``pool`` can never be granted."""
        if isinstance(slots, bool) or not isinstance(slots, int) or slots <= 0:
            raise LeaseError("executor slots must be a positive integer")
        state = self._pools.get(pool)
        if state is None:
            raise LeaseError(f'unknown executor pool "{pool}"')
        if slots > state.capacity:
            raise LeaseError(f"requested {slots} executor slots but pool capacity is {state.capacity}")

    async def acquire(
        self,
        pool: str = "default",
        slots: int = 1,
        metadata: Mapping[str, Any] | None = None,
        *,
        owner: str | None = None,
    ) -> Lease:
        """Wait (no timeout) for ``slots`` on ``pool``, fairly among jobs, then hold them.

        ``owner`` is the job the request counts against; without it the metadata's
        ``job_id`` is used, and requests naming no job share one anonymous FIFO.

        Raises:
            LeaseError: unknown pool, non-positive slots, or more slots than the capacity.
        """
        self.check(pool, slots)
        state = self._pools[pool]
        job = _owner_of(owner, metadata)
        requested_wall, requested = time.time(), time.monotonic()
        waiter = _enqueue(state, job, slots)
        _drain(state)
        if not waiter.future.done():
            try:
                await waiter.future
            except asyncio.CancelledError:
                _abandon(state, waiter)
                raise
        waited_ms = int((time.monotonic() - requested) * 1000)
        lease = Lease(
            lease_id=new_lease_id(),
            pool=pool,
            slots=slots,
            queue_wait_ms=waited_ms,
            requested_at_ms=int(requested_wall * 1000),
            acquired_at_ms=int(requested_wall * 1000) + waited_ms,
            metadata=dict(metadata or {}),
            owner=job,
        )
        state.active[lease.lease_id] = lease
        return lease

    def release(self, lease: Lease) -> None:
        """Free the lease's slots and grant them to the next fair request(s); idempotent."""
        state = self._pools.get(lease.pool)
        if state is None or state.active.pop(lease.lease_id, None) is None:
            return
        state.in_use -= lease.slots
        job = state.jobs.get(lease.owner)
        if job is not None:
            job.held -= lease.slots
            job.stamp = _tick(state)  # its turn is over: behind the jobs that waited meanwhile
            _forget_if_idle(state, lease.owner)
        _drain(state)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per pool: ``capacity``, ``in_use``, ``available``, ``queued`` (requests), ``active``
        (leases) and ``jobs`` (jobs holding or waiting for slots)."""
        return {
            name: {
                "capacity": s.capacity,
                "in_use": s.in_use,
                "available": s.capacity - s.in_use,
                "queued": sum(len(job.queue) for job in s.waiting.values()),
                "active": len(s.active),
                "jobs": len(s.jobs),
            }
            for name, s in self._pools.items()
        }

    def statistics(self) -> dict[str, dict[str, int]]:
        """Alias of :meth:`stats` (the name other bounded components use)."""
        return self.stats()


# -- the fair queue (module functions: each one step, on one pool's state) -------------------


def _job_cap(capacity: int, share: float) -> int:
    """Slots ``share`` of ``capacity`` allows, rounded down ("at most") but never below one slot.

    The epsilon keeps float noise (0.29 * 100 = 28.999…) from costing a slot."""
    return max(1, min(capacity, math.floor(share * capacity + 1e-9)))


def _owner_of(owner: str | None, metadata: Mapping[str, Any] | None) -> str:
    """The job a request counts against: explicit, else the lease metadata's ``job_id``."""
    if owner is not None:
        return str(owner)
    job_id = (metadata or {}).get("job_id")
    return ANONYMOUS if job_id is None else str(job_id)


def _enqueue(state: _Pool, owner: str, slots: int) -> _Waiter:
    """Append a request to its job's FIFO; granting is left to :func:`_drain`."""
    waiter = _Waiter(owner, slots, asyncio.get_running_loop().create_future())
    job = state.jobs.get(owner)
    if job is None:
        job = state.jobs[owner] = _Job(_tick(state))
    job.queue.append(waiter)
    state.waiting[owner] = job
    return waiter


def _drain(state: _Pool) -> None:
    """Grant fair requests while they fit; stop at the first that does not, reserving it.

    Nothing is chosen while the pool is full: a choice made then would be sticky before any
    slot is free to hold, and a job arriving before the next release would lose its turn."""
    while state.in_use < state.capacity and (waiter := _next(state)) is not None:
        if state.in_use + waiter.slots > state.capacity:
            state.reserved = waiter  # freed slots are held for it: big requests are not starved
            return
        _grant(state, waiter)


def _next(state: _Pool) -> _Waiter | None:
    """The request to serve next: the reserved one, else the fairest eligible job's oldest request.

    Scans the waiting jobs once. A job over its cap is skipped while other jobs wait, unless
    no waiting job holds any slot: then no release could ever make one eligible, and skipping
    them all would leave the pool idle forever, so the cap yields."""
    reserved = state.reserved
    if reserved is not None and not reserved.future.done():
        return reserved
    state.reserved = None
    best: tuple[tuple[int, int], _Waiter] | None = None
    fallback: tuple[tuple[int, int], _Waiter] | None = None
    anyone_holds = False
    for owner, job in list(state.waiting.items()):
        head = _head(state, owner, job)
        if head is None:
            continue
        key = (job.held, job.stamp)  # stamps are unique: no further tie
        anyone_holds = anyone_holds or job.held > 0
        if fallback is None or key < fallback[0]:
            fallback = (key, head)
        if not _over_cap(state, job, head) and (best is None or key < best[0]):
            best = (key, head)
    if best is None and fallback is not None and not anyone_holds:
        best = fallback
    return None if best is None else best[1]


def _head(state: _Pool, owner: str, job: _Job) -> _Waiter | None:
    """The job's oldest live request; cancelled ones at the front are dropped on the way."""
    queue = job.queue
    while queue and queue[0].future.done():  # cancelled; its task's cleanup finds it gone
        queue.popleft()
    if queue:
        return queue[0]
    del state.waiting[owner]
    _forget_if_idle(state, owner)
    return None


def _over_cap(state: _Pool, job: _Job, head: _Waiter) -> bool:
    """True if granting ``head`` would put its job over the cap while another job waits."""
    return job.held + head.slots > state.job_cap and len(state.waiting) > 1


def _grant(state: _Pool, waiter: _Waiter) -> None:
    """Give ``waiter`` its slots (it is the head of its job's FIFO) and wake its task."""
    job = state.jobs[waiter.owner]
    job.queue.popleft()
    if not job.queue:
        del state.waiting[waiter.owner]
    if state.reserved is waiter:
        state.reserved = None
    state.in_use += waiter.slots
    job.held += waiter.slots
    job.stamp = _tick(state)
    waiter.future.set_result(None)


def _tick(state: _Pool) -> int:
    """Advance the pool's clock (one tick per event, so no two jobs share a stamp)."""
    state.clock += 1
    return state.clock


def _abandon(state: _Pool, waiter: _Waiter) -> None:
    """A waiting task was cancelled: give back a grant it did not live to use, or its place."""
    job = state.jobs.get(waiter.owner)
    if waiter.future.done() and not waiter.future.cancelled():
        state.in_use -= waiter.slots  # granted just as it was cancelled
        if job is not None:
            job.held -= waiter.slots
    elif job is not None and waiter in job.queue:
        job.queue.remove(waiter)
        if not job.queue:
            state.waiting.pop(waiter.owner, None)
    if state.reserved is waiter:
        state.reserved = None
    _forget_if_idle(state, waiter.owner)
    _drain(state)


def _forget_if_idle(state: _Pool, owner: str) -> None:
    """Drop a job that neither holds nor waits, so a pool's memory is bounded by its active jobs."""
    job = state.jobs.get(owner)
    if job is not None and job.held == 0 and not job.queue:
        del state.jobs[owner]
        state.waiting.pop(owner, None)
