"""The store interface: job records, ordered events and agent snapshots.

The runtime never writes one row per message: it collects a :class:`WriteBatch` and
hands it to :meth:`Store.write_batch`, which applies it atomically (group commit).
Stores whose writes block (SQLite, Redis) say so with ``blocking = True`` and are
written from a worker thread; reads may come from any thread or process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..events import Event

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
LIVE_STATUSES = frozenset({"pending", "running", "paused"})


@dataclass(slots=True)
class WriteBatch:
    """Everything to persist in one transaction.

    ``jobs`` are whole job records to upsert; a record is *not* written over a stored
    record whose status is terminal (terminal states are final). ``events`` are new
    events per job, in order. ``agents`` are agent snapshots per job, upserted by
    ``agent_id``.
    """

    jobs: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[Event]] = field(default_factory=dict)
    agents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Queued mail per job: ``(agent_id, position, message dict)``; positions grow per agent.
    messages: dict[str, list[tuple[str, int, dict[str, Any]]]] = field(default_factory=dict)
    #: Per job and agent, the position up to which mail is consumed (those rows are dropped).
    consumed: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Named JSON values per job (the normalised manifest, stored executor outputs).
    blobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.events or self.agents or self.messages or self.consumed or self.blobs)


@runtime_checkable
class Store(Protocol):
    """Persistence for jobs, events and agent snapshots. Implementations are thread-safe."""

    #: True when writes block on I/O; the runtime then writes from a worker thread.
    blocking: bool
    #: Human-readable location, e.g. ``sqlite:///path`` or ``memory://``.
    url: str

    def write_batch(self, batch: WriteBatch) -> None:
        """Apply a batch atomically; terminal job records are never overwritten."""

    def create_job(self, record: dict[str, Any]) -> None:
        """Insert a new job record (fails with StoreError if the id exists)."""

    def get_job(self, job_id: str) -> dict[str, Any] | None: ...

    def list_jobs(self, *, limit: int | None = None, include_terminal: bool = True) -> list[dict[str, Any]]:
        """Job records, most recently updated first."""

    def delete_job(self, job_id: str) -> bool:
        """Remove a job and all its events and snapshots; False if it did not exist."""

    def read_events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Events with ``seq > after``, oldest first, as dicts (each has ``seq``)."""

    def count_events(self, job_id: str) -> int: ...

    def get_agents(self, job_id: str) -> list[dict[str, Any]]:
        """Agent snapshots sorted by ``agent_id``."""

    def read_mailboxes(self, job_id: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """Unconsumed mail per agent, as ``(position, message dict)`` in position order."""

    def get_blob(self, job_id: str, key: str) -> Any:
        """A named JSON value of the job, or ``None``."""

    def close(self) -> None: ...
