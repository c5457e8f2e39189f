"""The memory store's job leases and node registry (:class:`~.ownership.Ownership`).

One process holds a memory store, so this is the same contract on a dict: it lets a
runtime use the same ownership code whatever its store.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import TERMINAL_STATUSES, recent_text
from .ownership import NODE_FORGET, Lease, node_view

__all__ = ["Lease_", "MemoryOwnership", "Node_"]


@dataclass(slots=True)
class Lease_:
    """A stored lease; ``node`` is None once released (the epoch stays)."""

    node: str | None
    epoch: int
    expires: float


@dataclass(slots=True)
class Node_:
    info: dict[str, Any]
    seen: float
    ttl: float
    drain: bool = False


class MemoryOwnership:
    """Mixed into :class:`~.memory.MemoryStore`, whose lock and job records it shares."""

    _lock: threading.Lock
    _jobs: dict[str, dict[str, Any]]
    _leases: dict[str, Lease_]
    _nodes: dict[str, Node_]

    def _epoch(self, job_id: str) -> int:
        lease = self._leases.get(job_id)
        return lease.epoch if lease is not None else 0

    def claim_job(self, job_id: str, node: str, ttl: float, *, steal: bool = False) -> int | None:
        now = time.time()
        with self._lock:
            lease = self._leases.get(job_id)
            if lease is not None and lease.node is not None and lease.expires > now and not steal:
                return None
            epoch = self._epoch(job_id) + 1
            self._leases[job_id] = Lease_(node, epoch, now + ttl)
            return epoch

    def renew_leases(self, node: str, leases: Mapping[str, int], ttl: float) -> list[str]:
        expires = time.time() + ttl
        lost = []
        with self._lock:
            for job_id, epoch in leases.items():
                lease = self._leases.get(job_id)
                if lease is None or lease.epoch != epoch or lease.node != node:  # claimed or released
                    lost.append(job_id)
                else:
                    self._leases[job_id] = Lease_(node, epoch, expires)
        return lost

    def release_job(self, job_id: str, node: str, epoch: int) -> bool:
        with self._lock:
            lease = self._leases.get(job_id)
            if lease is None or lease.node != node or lease.epoch != epoch:
                return False
            lease.node, lease.expires = None, 0.0
            return True

    def get_lease(self, job_id: str) -> Lease | None:
        with self._lock:
            lease = self._leases.get(job_id)
            if lease is None or lease.node is None:
                return None
            return Lease(job_id, lease.node, lease.epoch, lease.expires - time.time())

    def unowned_jobs(self, limit: int = 100) -> list[str]:
        now = time.time()
        with self._lock:
            found = [
                (recent_text(record), job_id)
                for job_id, record in self._jobs.items()
                if record.get("status") not in TERMINAL_STATUSES
                and not (record.get("status") == "suspended" and not record.get("handoff"))
                and (
                    (lease := self._leases.get(job_id)) is None or lease.node is None or lease.expires <= now
                )
            ]
        return [job_id for _, job_id in sorted(found)[:limit]]

    def put_node(self, name: str, info: Mapping[str, Any], ttl: float) -> None:
        with self._lock:
            old = self._nodes.get(name)
            self._nodes[name] = Node_(
                copy.deepcopy(dict(info)), time.time(), ttl, old.drain if old else False
            )

    def list_nodes(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            for name in [n for n, node in self._nodes.items() if node.seen + node.ttl + NODE_FORGET < now]:
                del self._nodes[name]
            return [
                node_view(name, copy.deepcopy(node.info), node.seen, node.ttl, now, node.drain)
                for name, node in sorted(self._nodes.items())
            ]

    def request_drain(self, name: str) -> bool:
        with self._lock:
            node = self._nodes.get(name)
            if node is not None:
                node.drain = True
            return node is not None

    def remove_node(self, name: str) -> None:
        with self._lock:
            self._nodes.pop(name, None)
