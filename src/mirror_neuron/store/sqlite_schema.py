"""The SQLite store's tables: one migration per schema version.

Each entry of :data:`MIGRATIONS` upgrades the schema by one version; its index + 1 is the
version it produces (stored in ``PRAGMA user_version``). Append, never edit, to change the
schema: a file made by an older version is upgraded by the entries after its version.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY NOT NULL,
            status TEXT,
            updated_at TEXT,
            submitted_at TEXT,
            record TEXT NOT NULL
        )""",
        # Serves list_jobs: the expression must match sqlite._RECENT exactly to be used.
        "CREATE INDEX jobs_recent ON jobs (COALESCE(NULLIF(updated_at, ''), submitted_at, '') DESC)",
        """CREATE TABLE events (
            job_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            type TEXT NOT NULL,
            agent_id TEXT,
            ts REAL,
            data TEXT NOT NULL,
            PRIMARY KEY (job_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE agents (
            job_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            snapshot TEXT NOT NULL,
            PRIMARY KEY (job_id, agent_id)
        ) WITHOUT ROWID""",
    ),
)
MIGRATIONS += (
    (
        # v2: durable mailboxes (mail still queued at a commit) and named per-job values.
        """CREATE TABLE mailbox (
            job_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            pos INTEGER NOT NULL,
            message TEXT NOT NULL,
            PRIMARY KEY (job_id, agent_id, pos)
        ) WITHOUT ROWID""",
        """CREATE TABLE blobs (
            job_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (job_id, key)
        ) WITHOUT ROWID""",
    ),
)
MIGRATIONS += (
    (
        # v3: the cluster (store/ownership.py). A lease row stays after release (node NULL) so
        # that the epoch only grows; expires and seen are epoch seconds of the file's host.
        """CREATE TABLE leases (
            job_id TEXT PRIMARY KEY NOT NULL,
            node TEXT,
            epoch INTEGER NOT NULL,
            expires REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE nodes (
            name TEXT PRIMARY KEY NOT NULL,
            info TEXT NOT NULL,
            seen REAL NOT NULL,
            ttl REAL NOT NULL,
            drain INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
