"""Who owns a job and which nodes exist: the cluster's truth, kept in the store.

A running job has one owner: a **lease** (node name, **epoch**, expiry). Claiming a job
raises its epoch; every write batch of the job carries the epoch it was hosted under
(``WriteBatch.epochs``), and the store refuses the whole batch, writing nothing, when any
job's epoch is not its current one (:class:`~mirror_neuron.errors.LeaseLost`). So an
owner that was paused or cut off while another node claimed its job can never overwrite
the new owner's state: the check is inside the same transaction (SQLite) or Lua script
(Redis) as the write. An expired lease that nobody claimed keeps its epoch, so its owner
may take it back (:meth:`Ownership.renew_leases`) and go on without a gap.

Times are the store's clock (Redis ``TIME``; the file's host for SQLite), so nodes on
different machines agree on expiry without synchronised clocks.

Nodes register and heartbeat (:meth:`Ownership.put_node`); one that stops is listed as
dead once its TTL passed, and forgotten after :data:`NODE_FORGET` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["NODE_FORGET", "Lease", "Ownership", "node_view"]

#: A node dead for this long (seconds) is no longer listed.
NODE_FORGET = 3600.0


@dataclass(frozen=True, slots=True)
class Lease:
    """A job's lease: ``node`` holds it under ``epoch``; ``expires_in`` seconds remain
    (zero or less: expired, and any node may claim the job, which gets ``epoch + 1``)."""

    job_id: str
    node: str
    epoch: int
    expires_in: float

    @property
    def live(self) -> bool:
        return self.expires_in > 0


def node_view(
    name: str, info: Mapping[str, Any], seen: float, ttl: float, now: float, drain: bool
) -> dict[str, Any]:
    """A registered node as :meth:`Ownership.list_nodes` lists it."""
    return {
        **info,
        "name": name,
        "alive": now - seen < ttl,
        "seen_ago": round(max(now - seen, 0.0), 3),
        "drain": drain,
    }


@runtime_checkable
class Ownership(Protocol):
    """Job leases with fencing epochs, and the node registry. Every store implements it."""

    def claim_job(self, job_id: str, node: str, ttl: float, *, steal: bool = False) -> int | None:
        """Take the job's lease for ``node`` for ``ttl`` seconds; returns the new epoch.

        The lease must be free: never claimed (epoch 1), released or expired (the previous
        epoch + 1). Held live by any node, also ``node`` itself, it is ``None`` unless
        ``steal`` (for a holder known to be dead): fencing keeps even that safe. A job
        need not exist yet: ``submit`` claims before it creates the record.
        """

    def renew_leases(self, node: str, leases: Mapping[str, int], ttl: float) -> list[str]:
        """Extend ``node``'s leases (job id → epoch) to ``ttl`` from now, in one call.

        Returns the job ids whose lease is not ``node``'s under that epoch any more (claimed
        by another node, or released): their owner must stop them. A lease that expired but
        whose epoch is unchanged is taken back (nobody claimed the job meanwhile).
        """

    def release_job(self, job_id: str, node: str, epoch: int) -> bool:
        """Give the lease up at once (only ``node`` under ``epoch``); the epoch is kept."""

    def get_lease(self, job_id: str) -> Lease | None:
        """The job's lease, live or expired (``None``: never claimed, or released)."""

    def unowned_jobs(self, limit: int = 100) -> list[str]:
        """Ids of live (not terminal) jobs with no live lease (expired, released or never
        claimed), oldest update first; a job suspended for an operator (without ``handoff``
        in its record) is not listed: no node takes it up by itself."""

    def put_node(self, name: str, info: Mapping[str, Any], ttl: float) -> None:
        """Register or heartbeat a node: ``info`` replaces what was stored; alive for ``ttl``."""

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node seen in the last :data:`NODE_FORGET` seconds, sorted by name: its info
        plus ``name``, ``alive``, ``seen_ago`` (seconds) and ``drain`` (drain requested)."""

    def request_drain(self, name: str) -> bool:
        """Ask a node to hand its jobs to others; False when no such node is registered."""

    def remove_node(self, name: str) -> None:
        """Forget a node (it stopped): it is listed no more."""
