"""SQLite store: the embedded default, durable and shared by every process on one machine.

Why it is built this way:

* **WAL journal, ``synchronous=NORMAL``.** Readers (``mn status`` in another terminal) never
  block the runtime's writer and vice versa, and a commit does not fsync: a crashed
  process loses nothing it committed, a power cut can lose the last few batches, and
  neither corrupts the file.
* **A busy timeout and ``BEGIN IMMEDIATE``.** A second process waits for the write lock
  instead of failing with "database is locked"; taking the lock up front means a
  transaction never has to upgrade from read to write, which SQLite cannot wait for.
* **One connection per thread.** ``sqlite3`` connections must not be used by two threads
  at once; a connection per thread lets readers run beside the writer thread without a
  global lock.
* **One transaction per batch, rows encoded before it starts.** ``executemany`` inside a
  single transaction is what makes >100k events/s possible, and encoding first keeps the
  write lock short for the other processes.
* **Every failure is a StoreError naming the file,** so the CLI can print one sentence
  instead of a ``sqlite3`` traceback.
* **A file is checked before SQLite touches it, and a new one appears complete** (see
  :mod:`.sqlite_file`): a file that is empty or not SQLite is refused, not made a store.

Do not carry a store across ``fork()``: open a new one in the child.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._json import dumps_str, loads
from ..errors import StoreError, StoreMissing
from ..events import Event
from ..ids import fmt
from .base import TERMINAL_STATUSES, JobList, WriteBatch, decode_cursor, job_page, status_filter
from .sqlite_cluster import SQLiteOwnership, check_epochs
from .sqlite_file import check_file, create_file
from .sqlite_schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteStore"]

#: How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT = 10.0
#: Marks the file as ours (``PRAGMA application_id``; "MNDB").
APPLICATION_ID = 0x4D4E4442

_TERMINAL_SQL = "(" + ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES)) + ")"
# What list_jobs orders by; the jobs_recent index (sqlite_schema) is on exactly this expression.
_RECENT = "COALESCE(NULLIF(updated_at, ''), submitted_at, '')"

_UPSERT_JOB = f"""
    INSERT INTO jobs (job_id, status, updated_at, submitted_at, record) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (job_id) DO UPDATE SET
        status = excluded.status, updated_at = excluded.updated_at,
        submitted_at = excluded.submitted_at, record = excluded.record
    WHERE COALESCE(jobs.status, '') NOT IN {_TERMINAL_SQL}
"""
_CREATE_JOB = """
    INSERT INTO jobs (job_id, status, updated_at, submitted_at, record) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (job_id) DO NOTHING
"""
# A replayed batch (retry after an unclear failure) must be harmless: the first write wins.
_INSERT_EVENT = """
    INSERT INTO events (job_id, seq, type, agent_id, ts, data) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, seq) DO NOTHING
"""
_DELETE_CONSUMED = "DELETE FROM mailbox WHERE job_id = ? AND agent_id = ? AND pos <= ?"
_UPSERT_AGENT = """
    INSERT INTO agents (job_id, agent_id, snapshot) VALUES (?, ?, ?)
    ON CONFLICT (job_id, agent_id) DO UPDATE SET snapshot = excluded.snapshot
"""

JobRow = tuple[str, str | None, str | None, str | None, str]
EventRow = tuple[str, int, str, str | None, Any, str]
AgentRow = tuple[str, str, str]

# Primary result codes (``sqlite_errorcode & 0xFF``) → what the user should know.
_HINTS = {
    sqlite3.SQLITE_NOTADB: "it is not a MirrorNeuron store, or it is damaged",
    sqlite3.SQLITE_CORRUPT: "the database file is corrupt",
    sqlite3.SQLITE_READONLY: "the database or its directory is read-only",
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_CANTOPEN: "the file cannot be opened; check that its directory exists and is writable",
    sqlite3.SQLITE_BUSY: "another process held the database lock for more than {timeout:g}s",
    sqlite3.SQLITE_LOCKED: "the database is locked",
    sqlite3.SQLITE_IOERR: "a disk I/O error occurred",
    sqlite3.SQLITE_PERM: "permission denied",
}


class SQLiteStore(SQLiteOwnership):
    """A :class:`~mirror_neuron.store.base.Store` in one SQLite file, safe for many processes."""

    blocking = True

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        """Open the store in ``path``; with ``create=False`` a missing file is StoreMissing, not created."""
        self.path = Path(os.path.abspath(Path(path).expanduser()))
        self.url = f"sqlite://{self.path.as_posix()}"
        self._create = create
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: dict[threading.Thread, sqlite3.Connection] = {}
        self._closed = False
        try:
            with self._guard("opening the database"):
                if create:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                if not check_file(self.path):
                    if not create:
                        raise StoreMissing(str(self.path))
                    create_file(self.path, self._migrate, BUSY_TIMEOUT)
                self._initialise(self._conn())
        except BaseException:
            self.close()
            raise

    # -- writes ---------------------------------------------------------------------------

    def write_batch(self, batch: WriteBatch) -> None:
        if not batch:
            return
        jobs = [self._job_row(record) for record in batch.jobs]
        events = self._event_rows(batch.events)
        agents = self._agent_rows(batch.agents)
        mail = [
            (job_id, agent_id, pos, self._encode(message, f"a message of job {job_id}"))
            for job_id, rows in batch.messages.items()
            for agent_id, pos, message in rows
        ]
        consumed = [(job_id, a, pos) for job_id, upto in batch.consumed.items() for a, pos in upto.items()]
        blobs = [
            (job_id, key, self._encode(value, f"value {key} of job {job_id}"))
            for job_id, values in batch.blobs.items()
            for key, value in values.items()
        ]
        with self._transaction("writing a batch") as conn:
            check_epochs(conn, batch.epochs)  # fencing: a deposed owner writes nothing
            if jobs:
                conn.executemany(_UPSERT_JOB, jobs)
            if events:
                conn.executemany(_INSERT_EVENT, events)
            if agents:
                conn.executemany(_UPSERT_AGENT, agents)
            if mail:
                conn.executemany("INSERT OR REPLACE INTO mailbox VALUES (?, ?, ?, ?)", mail)
            if consumed:
                conn.executemany(_DELETE_CONSUMED, consumed)
            if blobs:
                conn.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", blobs)

    def create_job(self, record: dict[str, Any]) -> None:
        row = self._job_row(record)
        with self._transaction(f"creating job {row[0]}") as conn:
            if conn.execute(_CREATE_JOB, row).rowcount == 0:
                raise StoreError(f"job {row[0]} already exists")

    def delete_job(self, job_id: str) -> bool:
        with self._transaction(f"deleting job {job_id}") as conn:
            conn.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM agents WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM mailbox WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM blobs WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM leases WHERE job_id = ?", (job_id,))
            return conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount > 0

    # -- reads ----------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._query(f"reading job {job_id}", "SELECT record FROM jobs WHERE job_id = ?", (job_id,))
        return loads(rows[0][0]) if rows else None

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
        where: list[str] = []
        params: list[Any] = []
        if wanted is not None:
            if not wanted:
                return JobList()
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += sorted(wanted)
        elif not include_terminal:
            where.append(f"COALESCE(status, '') NOT IN {_TERMINAL_SQL}")
        if after is not None:  # keyset: the jobs after the cursor's in the order below
            # The first term lets SQLite seek in jobs_recent; the row value alone makes it scan.
            where.append(f"{_RECENT} <= ? AND ({_RECENT}, rowid) < (?, ?)")
            params += [after[0], *after]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        # rowid (kept by an upsert) breaks ties in creation order, as in the other stores.
        sql = (
            f"SELECT {_RECENT}, rowid, record FROM jobs {clause} ORDER BY {_RECENT} DESC, rowid DESC LIMIT ?"
        )
        size = -1 if limit is None or limit < 0 else limit + 1  # one more: is there a next page?
        rows = self._query("listing jobs", sql, (*params, size))
        return job_page([((recent, rowid), loads(record)) for recent, rowid, record in rows], limit)

    def job_ids_with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        # A range on the primary key's index: prefix <= job_id < the next prefix.
        end, most = _prefix_end(prefix), -1 if limit is None else max(limit, 0)
        upper, params = ("", (prefix, most)) if end is None else (" AND job_id < ?", (prefix, end, most))
        sql = f"SELECT job_id FROM jobs WHERE job_id >= ?{upper} ORDER BY job_id LIMIT ?"
        rows = self._query(f"looking up job ids starting {prefix!r}", sql, params)
        return [job_id for (job_id,) in rows]

    def read_events(self, job_id: str, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT seq, type, agent_id, ts, data FROM events "
            "WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        rows = self._query(
            f"reading events of job {job_id}", sql, (job_id, after, -1 if limit is None else limit)
        )
        return [_event_dict(job_id, *row) for row in rows]

    def count_events(self, job_id: str) -> int:
        # Events are numbered 1..n without gaps: the largest is the count, found in the key's
        # index at once (COUNT(*) walks every row: 80 ms for a million events).
        sql = "SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?"
        return int(self._query(f"counting events of job {job_id}", sql, (job_id,))[0][0])

    def get_agents(self, job_id: str) -> list[dict[str, Any]]:
        sql = "SELECT snapshot FROM agents WHERE job_id = ? ORDER BY agent_id"
        rows = self._query(f"reading agents of job {job_id}", sql, (job_id,))
        return [loads(snapshot) for (snapshot,) in rows]

    def read_mailboxes(self, job_id: str) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        sql = "SELECT agent_id, pos, message FROM mailbox WHERE job_id = ? ORDER BY agent_id, pos"
        boxes: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for agent_id, pos, message in self._query(f"reading mailboxes of job {job_id}", sql, (job_id,)):
            boxes.setdefault(agent_id, []).append((pos, loads(message)))
        return boxes

    def get_blob(self, job_id: str, key: str) -> Any:
        sql = "SELECT value FROM blobs WHERE job_id = ? AND key = ?"
        rows = self._query(f"reading {key} of job {job_id}", sql, (job_id, key))
        return loads(rows[0][0]) if rows else None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection; later calls raise StoreError."""
        with self._lock:
            self._closed = True
            conns = list(self._conns.values())
            self._conns.clear()
            self._local = threading.local()
        for conn in conns:
            conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    # -- connections and schema -----------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StoreError(f"SQLite store {self.path} is closed")
            # Threads that have ended cannot use their connection any more: close it now.
            for thread in [t for t in self._conns if not t.is_alive()]:
                self._conns.pop(thread).close()
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False
            # only so that close() and the pruning above may close another thread's connection.
            # Without create, "mode=rw": a file deleted meanwhile is an error, not a new empty file.
            target, uri = (self.path, False) if self._create else (f"{self.path.as_uri()}?mode=rw", True)
            conn = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False, uri=uri
            )
            try:
                conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                conn.close()
                raise
            self._conns[threading.current_thread()] = conn
            return conn

    def _initialise(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL (a persistent property of the file) and bring the schema up to date.

        Both take the write lock, so the busy timeout also covers several processes
        opening a new file at once.
        """
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        self._migrate(conn)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(conn)  # again: another process may have migrated meanwhile
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The file's schema version, refusing files that belong to something else or to a newer release."""
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if app_id not in (0, APPLICATION_ID) or (version == 0 and _has_tables(conn)):
            found = f"{app_id:#010x}" if app_id else "none, and it already has tables"
            raise StoreError(
                f"{self.path} is a SQLite database of another application, not a MirrorNeuron store "
                f"(application_id mismatch: {found}, expected {APPLICATION_ID:#010x}); "
                "move it away or choose another store location"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer MirrorNeuron (schema {version}, "
                f"this version reads up to {SCHEMA_VERSION}); upgrade mirror_neuron"
            )
        return version

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn sqlite3 and OS errors into a StoreError that names the file and the cause."""
        try:
            yield
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            hint = _HINTS.get(code & 0xFF, "").format(timeout=BUSY_TIMEOUT) if isinstance(code, int) else ""
            detail = f"{exc} ({hint})" if hint else str(exc)
            raise StoreError(f"SQLite store {self.path}: {action} failed: {detail}") from exc
        except (FileExistsError, NotADirectoryError) as exc:
            # mkdir(parents=True) met a regular file where a directory has to be.
            blocker = next((p for p in self.path.parents if p.exists()), self.path.parent)
            raise StoreError(
                f"SQLite store {self.path}: {action} failed: {blocker} is not a directory"
            ) from exc
        except OSError as exc:
            where = exc.filename or self.path
            raise StoreError(f"SQLite store {self.path}: {action} failed: {where}: {exc.strerror}") from exc

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front; anything raised rolls it back."""
        with self._guard(action):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _query(self, action: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._guard(action):
            return self._conn().execute(sql, params).fetchall()

    def _job_row(self, record: dict[str, Any]) -> JobRow:
        job_id = record.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            raise StoreError(f"SQLite store {self.path}: a job record needs a string job_id, got {job_id!r}")
        return (
            job_id,
            _text(record.get("status")),
            _text(record.get("updated_at")),
            _text(record.get("submitted_at")),
            self._encode(record, f"job {job_id}"),
        )

    def _event_rows(self, events: dict[str, list[Event]]) -> list[EventRow]:
        try:
            return [
                (job_id, e.seq, e.type, e.agent_id, e.timestamp, _event_data(e))
                for job_id, job_events in events.items()
                for e in job_events
            ]
        except TypeError as exc:
            raise StoreError(f"SQLite store {self.path}: an event cannot be encoded as JSON: {exc}") from exc

    def _agent_rows(self, agents: dict[str, list[dict[str, Any]]]) -> list[AgentRow]:
        rows: list[AgentRow] = []
        for job_id, snapshots in agents.items():
            for snapshot in snapshots:
                agent_id = snapshot.get("agent_id")
                if agent_id is None:
                    raise StoreError(
                        f"SQLite store {self.path}: an agent snapshot of job {job_id} has no agent_id"
                    )
                rows.append(
                    (job_id, str(agent_id), self._encode(snapshot, f"agent {agent_id} of job {job_id}"))
                )
        return rows

    def _encode(self, value: dict[str, Any], what: str) -> str:
        try:
            return dumps_str(value)
        except TypeError as exc:
            raise StoreError(f"SQLite store {self.path}: {what} cannot be encoded as JSON: {exc}") from exc


def _event_data(e: Event) -> str:
    """Only what the columns do not hold: ``[summary?, payload, extra]``.

    Message summaries travel as bare tuples (see :mod:`mirror_neuron.events`); keeping
    them as JSON arrays avoids building a dict per event on the write path.
    """
    payload = e.payload
    if payload.__class__ is tuple:
        # The message id may still be the writing process's counter: store its string form.
        return dumps_str((1, (fmt(payload[0]), *payload[1:]), e.extra))
    return dumps_str((0, payload, e.extra))


def _event_dict(
    job_id: str, seq: int, type_: str, agent_id: str | None, ts: float, data: str
) -> dict[str, Any]:
    summary, payload, extra = loads(data)
    if summary:
        payload = tuple(payload)
    return Event(seq, type_, job_id, ts, agent_id, payload, extra).to_dict()


def _prefix_end(prefix: str) -> str | None:
    """The least text above all that start with ``prefix`` (``"ab"`` → ``"ac"``), None if none.

    SQLite compares TEXT as UTF-8 bytes, which orders like code points (surrogates skipped).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _text(value: Any) -> str | None:
    """Index columns hold text (ISO timestamps, statuses) whatever the record holds."""
    return value if value is None or isinstance(value, str) else str(value)


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo the open transaction; SQLite may already have rolled back after I/O or full-disk errors."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
