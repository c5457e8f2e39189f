"""In-memory store: for tests and ephemeral runs. Holds event objects, not JSON."""

from __future__ import annotations

import copy
import threading
from typing import Any

from ..errors import StoreError
from ..events import Event
from .base import TERMINAL_STATUSES, WriteBatch


class MemoryStore:
    """A :class:`~mirror_neuron.store.base.Store` that lives and dies with the process."""

    blocking = False
    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._events: dict[str, list[Event]] = {}
        self._agents: dict[str, dict[str, dict[str, Any]]] = {}
        self._mail: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
        self._blobs: dict[str, dict[str, Any]] = {}

    def write_batch(self, batch: WriteBatch) -> None:
        for job_id, snapshots in batch.agents.items():
            for snap in snapshots:
                if "agent_id" not in snap:  # all-or-nothing, like a SQL transaction
                    raise StoreError(f"an agent snapshot of job {job_id} has no agent_id")
        with self._lock:
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
        self._jobs[record["job_id"]] = dict(record)

    def create_job(self, record: dict[str, Any]) -> None:
        with self._lock:
            if record["job_id"] in self._jobs:
                raise StoreError(f"job {record['job_id']} already exists")
            self._jobs[record["job_id"]] = dict(record)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._jobs.get(job_id)
            return copy.deepcopy(record) if record is not None else None

    def list_jobs(self, *, limit: int | None = None, include_terminal: bool = True) -> list[dict[str, Any]]:
        with self._lock:
            jobs = [copy.deepcopy(r) for r in self._jobs.values()]
        if not include_terminal:
            jobs = [j for j in jobs if j.get("status") not in TERMINAL_STATUSES]
        # Newest update first; among equal timestamps the most recently created first.
        order = list(enumerate(jobs))
        order.sort(
            key=lambda p: (p[1].get("updated_at") or p[1].get("submitted_at") or "", p[0]), reverse=True
        )
        jobs = [j for _, j in order]
        return jobs if limit is None else jobs[:limit]

    def delete_job(self, job_id: str) -> bool:
        with self._lock:
            self._events.pop(job_id, None)
            self._agents.pop(job_id, None)
            self._mail.pop(job_id, None)
            self._blobs.pop(job_id, None)
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
