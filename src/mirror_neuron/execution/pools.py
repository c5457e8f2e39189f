"""Executor pools and leases: how many scripts may run at once, per named pool.

One :class:`LeaseManager` per runtime (pools are not cluster-wide, as in the original).
A request that does not fit waits in its pool's FIFO queue; the head of the queue
blocks the ones behind it even if they are smaller, so a large request is never starved.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ids import lease_id as new_lease_id
from .errors import LeaseError

if TYPE_CHECKING:
    from ..config import Config


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


@dataclass(slots=True)
class _Waiter:
    slots: int
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Pool:
    capacity: int
    in_use: int = 0
    queue: deque[_Waiter] = field(default_factory=deque)
    active: dict[str, Lease] = field(default_factory=dict)


class LeaseManager:
    """Grants leases on named pools of executor slots (asyncio, one event loop)."""

    def __init__(self, capacities: Mapping[str, int]) -> None:
        self._pools = {name: _Pool(capacity) for name, capacity in capacities.items()}

    @classmethod
    def from_config(cls, config: Config) -> LeaseManager:
        """``default`` = ``executor_max_concurrency``, plus ``pool_capacities`` (may override it)."""
        return cls(config.pools())

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
        self, pool: str = "default", slots: int = 1, metadata: Mapping[str, Any] | None = None
    ) -> Lease:
        """Wait (FIFO, no timeout) until ``slots`` are free on ``pool``, then hold them.

        Raises:
            LeaseError: unknown pool, non-positive slots, or more slots than the capacity.
        """
        self.check(pool, slots)
        state = self._pools[pool]
        requested_wall, requested = time.time(), time.monotonic()
        if state.queue or state.in_use + slots > state.capacity:
            waiter = _Waiter(slots, asyncio.get_running_loop().create_future())
            state.queue.append(waiter)
            try:
                await waiter.future
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    state.in_use -= slots  # granted just as we were cancelled: give it back
                elif waiter in state.queue:
                    state.queue.remove(waiter)
                self._drain(state)
                raise
        else:
            state.in_use += slots
        waited_ms = int((time.monotonic() - requested) * 1000)
        lease = Lease(
            lease_id=new_lease_id(),
            pool=pool,
            slots=slots,
            queue_wait_ms=waited_ms,
            requested_at_ms=int(requested_wall * 1000),
            acquired_at_ms=int(requested_wall * 1000) + waited_ms,
            metadata=dict(metadata or {}),
        )
        state.active[lease.lease_id] = lease
        return lease

    def release(self, lease: Lease) -> None:
        """Free the lease's slots and wake queued requests that now fit; idempotent."""
        state = self._pools.get(lease.pool)
        if state is None or state.active.pop(lease.lease_id, None) is None:
            return
        state.in_use -= lease.slots
        self._drain(state)

    def _drain(self, state: _Pool) -> None:
        while state.queue and state.in_use + state.queue[0].slots <= state.capacity:
            waiter = state.queue.popleft()
            if waiter.future.done():  # cancelled, cleanup pending in its task
                continue
            state.in_use += waiter.slots
            waiter.future.set_result(None)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per pool: ``capacity``, ``in_use``, ``available``, ``queued``, ``active`` (leases)."""
        return {
            name: {
                "capacity": s.capacity,
                "in_use": s.in_use,
                "available": s.capacity - s.in_use,
                "queued": len(s.queue),
                "active": len(s.active),
            }
            for name, s in self._pools.items()
        }

    def statistics(self) -> dict[str, dict[str, int]]:
        """Alias of :meth:`stats` (the name other bounded components use)."""
        return self.stats()
