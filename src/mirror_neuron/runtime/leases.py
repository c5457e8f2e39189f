"""The leases of the jobs one runtime hosts: claimed, renewed well before expiry, released.

A job's lease (see :mod:`mirror_neuron.store.ownership`) is what makes this runtime its
owner. It is renewed every third of its TTL for all hosted jobs in one store call, from a
worker thread, so a long batch in the writer never delays it. A renewal that finds a
lease gone to another node *fences* the job: it stops here at once, without writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import StoreError
from ..store.base import Store
from .blocking import call_store

log = logging.getLogger("mirror_neuron.cluster")
#: Share of the TTL after the last renewal that reached the store when jobs stop themselves.
SELF_FENCE = 0.9


class LeaseKeeper:
    """Claims, renews and releases the leases of the jobs hosted by one runtime (node)."""

    def __init__(self, store: Store, node: str, ttl: float, fence: Callable[[str, str], None]) -> None:
        self.store = store
        self.node = node
        self.ttl = ttl
        #: Job id → the epoch this node holds it under.
        self.held: dict[str, int] = {}
        self._fence = fence
        #: Renewals that failed in a row (the store did not answer).
        self.failures = 0
        #: When the last renewal that reached the store began (monotonic seconds).
        self.renewed_at = time.monotonic()

    async def claim(self, job_id: str, *, steal: bool = False) -> int | None:
        """Take the job's lease (see ``Ownership.claim_job``); the epoch, or None if it is held."""
        epoch: int | None = await call_store(
            self.store, self.store.claim_job, job_id, self.node, self.ttl, steal=steal
        )
        if epoch is not None:
            self.held[job_id] = epoch
        return epoch

    def claim_now(self, job_id: str) -> int | None:
        """:meth:`claim`, blocking (for the writer's thread)."""
        epoch = self.store.claim_job(job_id, self.node, self.ttl)
        if epoch is not None:
            self.held[job_id] = epoch
        return epoch

    def forget(self, job_id: str) -> int | None:
        """Stop renewing a job's lease (it moved away); the epoch it was held under."""
        return self.held.pop(job_id, None)

    def release_now(self, job_id: str) -> None:
        """Give the lease up at once so another node may claim the job (blocking)."""
        epoch = self.held.pop(job_id, None)
        if epoch is not None:
            try:
                self.store.release_job(job_id, self.node, epoch)
            except StoreError as exc:  # it expires by itself within the TTL
                log.warning("could not release the lease of job %s: %s", job_id, exc)

    async def renew(self) -> None:
        """Renew every held lease once; fence the jobs whose lease another node took."""
        if not self.held:
            return
        held = dict(self.held)
        began = time.monotonic()
        try:
            lost: list[str] = await call_store(self.store, self.store.renew_leases, self.node, held, self.ttl)
        except StoreError as exc:
            self.failures += 1
            log.warning("renewing %d job lease(s) failed (%d in a row): %s", len(held), self.failures, exc)
            if time.monotonic() - self.renewed_at > self.ttl * SELF_FENCE:
                # The leases may have expired and been claimed elsewhere: stop before two
                # nodes run the same executors (what was stored stays for the next owner).
                for job_id in list(self.held):
                    del self.held[job_id]
                    self._fence(job_id, f"its lease could not be renewed for {self.ttl:g}s: {exc}")
            return
        self.failures = 0
        self.renewed_at = began
        for job_id in lost:
            if self.held.get(job_id) == held[job_id]:
                del self.held[job_id]
                self._fence(job_id, f"its lease (epoch {held[job_id]}) was claimed by another node")

    async def run(self) -> None:
        """Renew every third of the TTL until cancelled."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self.renew()
