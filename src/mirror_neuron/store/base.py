"""The store interface: job records, ordered events and agent snapshots.

The runtime never writes one row per message: it collects a :class:`WriteBatch` and
hands it to :meth:`Store.write_batch`, which applies it atomically (group commit).
Stores whose writes block (SQLite, Redis) say so with ``blocking = True`` and are
written from a worker thread; reads may come from any thread or process.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._json import dumps, loads
from ..errors import AmbiguousJobId, InvalidCursor, JobNotFound
from ..events import Event
from ..states import LIVE_JOB_STATES, TERMINAL_JOB_STATES
from .ownership import Ownership

TERMINAL_STATUSES: frozenset[str] = frozenset(s.value for s in TERMINAL_JOB_STATES)
LIVE_STATUSES: frozenset[str] = frozenset(s.value for s in LIVE_JOB_STATES)
#: Every job status ``list_jobs`` can filter by.
JOB_STATUSES: frozenset[str] = LIVE_STATUSES | TERMINAL_STATUSES


class JobList(list[dict[str, Any]]):
    """Job records as :meth:`Store.list_jobs` returns them, and where the next page starts.

    ``next_cursor`` is set when ``limit`` left matching jobs out: pass it back as ``cursor``
    for the jobs after the last one here, in the same order (``None``: there are no more).
    A cursor holds the last job's place in the order (its update time and creation number),
    not a position, so jobs added while paging shift nothing: every job that was there when
    paging began comes exactly once. A job updated meanwhile moves to the front: it never
    comes twice, but it is missed if the pages had not yet reached it.
    """

    __slots__ = ("next_cursor",)

    def __init__(self, records: Iterable[dict[str, Any]] = (), next_cursor: str | None = None) -> None:
        super().__init__(records)
        self.next_cursor = next_cursor


#: How many candidates an ambiguous job id prefix lists.
CANDIDATES = 10


def resolve_job_id(store: Store, text: str) -> str:
    """The id of the one job whose id is ``text`` or starts with it.

    An exact id always wins. Raises :class:`JobNotFound` when no id starts with ``text``,
    and an error listing the candidates when more than one does.
    """
    if not text:
        raise JobNotFound(text)
    if store.get_job(text) is not None:
        return text
    found = store.job_ids_with_prefix(text, limit=CANDIDATES + 1)
    if not found:
        raise JobNotFound(text)
    if len(found) == 1:
        return found[0]
    more = ", …" if len(found) > CANDIDATES else ""
    raise AmbiguousJobId(
        f"job id prefix {text} is ambiguous; it matches {', '.join(found[:CANDIDATES])}{more}"
    )


def recent_text(record: dict[str, Any]) -> str:
    """What jobs are listed by, newest first: ``updated_at``, else ``submitted_at``, as text."""
    for key in ("updated_at", "submitted_at"):
        value = record.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return ""


def encode_cursor(recent: str, number: int) -> str:
    """An opaque cursor for the place after a job: its :func:`recent_text` and creation number."""
    return base64.urlsafe_b64encode(dumps([recent, number])).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """The ``(recent text, creation number)`` in a cursor from :func:`encode_cursor`.

    Raises:
        InvalidCursor: ``cursor`` was not made by :func:`encode_cursor`.
    """
    try:
        recent, number = loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        recent = number = None
    if not isinstance(recent, str) or type(number) is not int or number < 0:
        raise InvalidCursor("invalid cursor: pass back a next_cursor exactly as a job list gave it")
    return recent, number


def job_page(rows: list[tuple[tuple[str, int], dict[str, Any]]], limit: int | None) -> JobList:
    """The records of ``rows`` (``((recent text, creation number), record)`` in list order,
    read one past ``limit``), with the cursor after the last one kept if another follows."""
    if limit is None or limit < 0 or len(rows) <= limit:
        return JobList(record for _, record in rows)
    page = rows[:limit]
    return JobList((record for _, record in page), encode_cursor(*page[-1][0]) if page else None)


def status_filter(status: str | Iterable[str] | None, include_terminal: bool) -> frozenset[str] | None:
    """The statuses a listed job must have (``None``: any, also none, but terminal ones only
    with ``include_terminal``)."""
    if status is None:
        return None
    wanted = frozenset((status,) if isinstance(status, str) else status)
    return wanted if include_terminal else wanted - TERMINAL_STATUSES


def keeps(wanted: frozenset[str] | None, include_terminal: bool, status: Any) -> bool:
    """Whether a job with ``status`` is listed under :func:`status_filter`'s ``wanted``."""
    if wanted is not None:
        return status in wanted
    return include_terminal or status not in TERMINAL_STATUSES


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
    #: The lease epoch each leased job was hosted under (see :mod:`.ownership`): the store
    #: refuses the whole batch, writing nothing, if one is not the job's current epoch.
    epochs: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.events or self.agents or self.messages or self.consumed or self.blobs)


@runtime_checkable
class Store(Ownership, Protocol):
    """Persistence for jobs, events and agent snapshots, and the job leases and node registry
    of :class:`~.ownership.Ownership`. Implementations are thread-safe."""

    #: True when writes block on I/O; the runtime then writes from a worker thread.
    blocking: bool
    #: Human-readable location, e.g. ``sqlite:///path`` or ``memory://``.
    url: str

    def write_batch(self, batch: WriteBatch) -> None:
        """Apply a batch atomically; terminal job records are never overwritten.

        Raises:
            LeaseLost: a job's epoch in ``batch.epochs`` is stale; nothing was written.
        """

    def create_job(self, record: dict[str, Any]) -> None:
        """Insert a new job record (fails with StoreError if the id exists)."""

    def get_job(self, job_id: str) -> dict[str, Any] | None: ...

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        include_terminal: bool = True,
        status: str | Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> JobList:
        """Job records, most recently updated first (ties: most recently created first).

        ``status`` keeps only jobs with that status (or one of those statuses); ``cursor``, a
        ``next_cursor`` of an earlier call with the same filters, starts after its last job.
        At most ``limit`` records; ``next_cursor`` is set if more match (see :class:`JobList`).

        Raises:
            InvalidCursor: ``cursor`` is not one a ``list_jobs`` gave out.
        """

    def job_ids_with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        """The ids of the stored jobs that start with ``prefix``, sorted; the first ``limit`` of them."""

    def delete_job(self, job_id: str) -> bool:
        """Remove a job and all its events, snapshots and lease; False if it did not exist."""

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
