"""In-memory store: for tests and ephemeral runs. Holds event objects, not JSON."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterable
from typing import Any

from ..errors import LeaseLost, StoreError
from ..events import Event
from .base import (
    TERMINAL_STATUSES,
    JobList,
    WriteBatch,
    decode_cursor,
    job_page,
    keeps,
    recent_text,
    status_filter,
)
from .memory_cluster import Lease_, MemoryOwnership, Node_


class MemoryStore(MemoryOwnership):
    """A :class:`~mirror_neuron.store.base.Store` that lives and dies with the process."""

    blocking = False
    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        #: Creation number of each job (ties in list_jobs: newest created first).
        self._numbers: dict[str, int] = {}
        self._created = itertools.count(1)
        self._events: dict[str, list[Event]] = {}
        self._agents: dict[str, dict[str, dict[str, Any]]] = {}
        self._mail: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
        self._blobs: dict[str, dict[str, Any]] = {}
        self._leases: dict[str, Lease_] = {}
        self._nodes: dict[str, Node_] = {}

    def write_batch(self, batch: WriteBatch) -> None:
        for job_id, snapshots in batch.agents.items():
            for snap in snapshots:
                if "agent_id" not in snap:  # all-or-nothing, like a SQL transaction
                    raise StoreError(f"an agent snapshot of job {job_id} has no agent_id")
        with self._lock:
            stale = [j for j, epoch in batch.epochs.items() if self._epoch(j) != epoch]
            if stale:
                raise LeaseLost(stale)
            for record in batch.jobs:
                self._put_job(record)
            for job_id, events in batch.events.items():
                self._events.setdefault(job_id, []).extend(events)
            for job_id, snapshots in batch.agents.items():
                agents = self._agents.setdefault(job_id, {})
                for snap in snapshots:
                    agents[snap["agent_id"]] = snap
            for job_id, rows in batch.messages.items():
                mail = self._mail.setdefault(job_id, {})
                for agent_id, pos, message in rows:
                    mail.setdefault(agent_id, {})[pos] = message
            for job_id, upto in batch.consumed.items():
                mail = self._mail.get(job_id, {})
                for agent_id, pos in upto.items():
                    box = mail.get(agent_id)
                    if box:
                        for p in [p for p in box if p <= pos]:
                            del box[p]
            for job_id, values in batch.blobs.items():
                self._blobs.setdefault(job_id, {}).update(copy.deepcopy(values))

    def _put_job(self, record: dict[str, Any]) -> None:
        current = self._jobs.get(record["job_id"])
        if current is not None and current.get("status") in TERMINAL_STATUSES:
            return
        if current is None:
            self._numbers[record["job_id"]] = next(self._created)
        self._jobs[record["job_id"]] = dict(record)

    def create_job(self, record: dict[str, Any]) -> None:
        with self._lock:
            if record["job_id"] in self._jobs:
                raise StoreError(f"job {record['job_id']} already exists")
            self._numbers[record["job_id"]] = next(self._created)
            self._jobs[record["job_id"]] = dict(record)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return copy.deepcopy(record) if record is not None else None

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        include_terminal: bool = True,
        status: str | Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> JobList:
        after = None if cursor is None else decode_cursor(cursor)
        wanted = status_filter(status, include_terminal)
        with self._lock:
            # Newest update first; among equal timestamps the most recently created first.
            keyed = [
                ((recent_text(r), self._numbers[job_id]), r)
                for job_id, r in self._jobs.items()
                if keeps(wanted, include_terminal, r.get("status"))
            ]
            keyed.sort(key=lambda pair: pair[0], reverse=True)
            if after is not None:
                keyed = [pair for pair in keyed if pair[0] < after]
            if limit is not None and limit >= 0:
                keyed = keyed[: limit + 1]  # one more: is there a next page?
            return job_page([(key, copy.deepcopy(r)) for key, r in keyed], limit)

    def job_ids_with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        with self._lock:
            found = sorted(job_id for job_id in self._jobs if job_id.startswith(prefix))
        return found if limit is None else found[: max(limit, 0)]

    def delete_job(self, job_id: str) -> bool:
        with self._lock:
            self._events.pop(job_id, None)
            self._agents.pop(job_id, None)
            self._mail.pop(job_id, None)
            self._blobs.pop(job_id, None)
            self._numbers.pop(job_id, None)
            self._leases.pop(job_id, None)
            return self._jobs.pop(job_id, None) is not None

    def read_events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            events = self._events.get(job_id, [])
            # seq is 1-based and dense, so ``after`` is also an index.
            selected = events[after:] if limit is None else events[after : after + limit]
        return [e.to_dict() for e in selected]

    def count_events(self, job_id: str) -> int:
        with self._lock:
            return len(self._events.get(job_id, ()))

    def get_agents(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            agents = self._agents.get(job_id, {})
            return [copy.deepcopy(agents[k]) for k in sorted(agents)]

    def read_mailboxes(self, job_id: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        with self._lock:
            mail = self._mail.get(job_id, {})
            return {a: sorted(box.items()) for a, box in mail.items() if box}

    def get_blob(self, job_id: str, key: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._blobs.get(job_id, {}).get(key))

    def close(self) -> None:
        pass
