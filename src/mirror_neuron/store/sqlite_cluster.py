"""The SQLite store's job leases and node registry (:class:`~.ownership.Ownership`).

Each call is one ``BEGIN IMMEDIATE`` transaction, so claims by processes sharing the file
are serialised by SQLite's write lock; the fencing check of a write batch runs inside the
batch's own transaction (:func:`check_epochs`). The clock is this host's: every process
sharing a SQLite file runs on the host that has it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from .._json import dumps_str, loads
from ..errors import LeaseLost
from .base import TERMINAL_STATUSES
from .ownership import NODE_FORGET, Lease, node_view

__all__ = ["SQLiteOwnership", "check_epochs"]

_TERMINAL_SQL = "(" + ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES)) + ")"
_CLAIM = """
    INSERT INTO leases (job_id, node, epoch, expires) VALUES (?, ?, 1, ?)
    ON CONFLICT (job_id) DO UPDATE SET node = excluded.node, epoch = leases.epoch + 1,
        expires = excluded.expires
    WHERE ? OR leases.node IS NULL OR leases.expires <= ?
    RETURNING epoch
"""


def check_epochs(conn: sqlite3.Connection, epochs: Mapping[str, int]) -> None:
    """Raise LeaseLost (inside the caller's transaction) if a job's epoch is not the current one."""
    if not epochs:
        return
    stale = []
    for job_id, epoch in epochs.items():
        row = conn.execute("SELECT epoch FROM leases WHERE job_id = ?", (job_id,)).fetchone()
        if (row[0] if row else 0) != epoch:
            stale.append(job_id)
    if stale:
        raise LeaseLost(stale)


class SQLiteOwnership:
    """Mixed into :class:`~.sqlite.SQLiteStore`, whose transaction and query helpers it uses."""

    def _transaction(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, action: str, sql: str, params: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError

    def claim_job(self, job_id: str, node: str, ttl: float, *, steal: bool = False) -> int | None:
        now = time.time()
        with self._transaction(f"claiming job {job_id}") as conn:
            row = conn.execute(_CLAIM, (job_id, node, now + ttl, steal, now)).fetchone()
        return int(row[0]) if row else None

    def renew_leases(self, node: str, leases: Mapping[str, int], ttl: float) -> list[str]:
        if not leases:
            return []
        expires = time.time() + ttl
        lost = []
        with self._transaction(f"renewing the leases of node {node}") as conn:
            for job_id, epoch in leases.items():
                done = conn.execute(  # never a released lease (node NULL): it is not ours any more
                    "UPDATE leases SET expires = ? WHERE job_id = ? AND epoch = ? AND node = ?",
                    (expires, job_id, epoch, node),
                )
                if done.rowcount == 0:
                    lost.append(job_id)
        return lost

    def release_job(self, job_id: str, node: str, epoch: int) -> bool:
        with self._transaction(f"releasing job {job_id}") as conn:
            done = conn.execute(
                "UPDATE leases SET node = NULL, expires = 0 WHERE job_id = ? AND node = ? AND epoch = ?",
                (job_id, node, epoch),
            )
            return done.rowcount > 0

    def get_lease(self, job_id: str) -> Lease | None:
        rows = self._query(
            f"reading the lease of job {job_id}",
            "SELECT node, epoch, expires FROM leases WHERE job_id = ? AND node IS NOT NULL",
            (job_id,),
        )
        if not rows:
            return None
        node, epoch, expires = rows[0]
        return Lease(job_id, node, int(epoch), expires - time.time())

    def unowned_jobs(self, limit: int = 100) -> list[str]:
        rows = self._query(
            "listing jobs without an owner",
            f"""SELECT j.job_id FROM jobs j LEFT JOIN leases l ON l.job_id = j.job_id
                WHERE COALESCE(j.status, '') NOT IN {_TERMINAL_SQL} AND (l.node IS NULL OR l.expires <= ?)
                AND NOT (j.status = 'suspended' AND COALESCE(json_extract(j.record, '$.handoff'), 0) = 0)
                ORDER BY COALESCE(NULLIF(j.updated_at, ''), j.submitted_at, '') LIMIT ?""",
            (time.time(), limit),
        )
        return [row[0] for row in rows]

    def put_node(self, name: str, info: Mapping[str, Any], ttl: float) -> None:
        with self._transaction(f"registering node {name}") as conn:
            conn.execute("DELETE FROM nodes WHERE seen + ttl + ? < ?", (NODE_FORGET, time.time()))
            conn.execute(
                """INSERT INTO nodes (name, info, seen, ttl) VALUES (?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET info = excluded.info, seen = excluded.seen,
                       ttl = excluded.ttl""",
                (name, dumps_str(dict(info)), time.time(), ttl),
            )

    def list_nodes(self) -> list[dict[str, Any]]:
        now = time.time()  # a read only (no write lock): put_node forgets the long dead
        rows = self._query(
            "listing nodes",
            "SELECT name, info, seen, ttl, drain FROM nodes WHERE seen + ttl + ? >= ? ORDER BY name",
            (NODE_FORGET, now),
        )
        return [
            node_view(name, loads(info), seen, ttl, now, bool(drain)) for name, info, seen, ttl, drain in rows
        ]

    def request_drain(self, name: str) -> bool:
        with self._transaction(f"asking node {name} to drain") as conn:
            return conn.execute("UPDATE nodes SET drain = 1 WHERE name = ?", (name,)).rowcount > 0

    def remove_node(self, name: str) -> None:
        with self._transaction(f"removing node {name}") as conn:
            conn.execute("DELETE FROM nodes WHERE name = ?", (name,))
