"""The SQLite store's file: refuse one that cannot be ours, create a new one atomically.

Why: SQLite opens any empty file as a new database and reports a foreign file only at the
first query, deep in a traceback. An operator who points the runtime at the wrong file
(or at a file truncated to 0 bytes) must be told so, by name, and the file left alone.
An empty file is refused rather than initialised, which is only safe if a store of ours
is never seen empty: a new store is therefore built under a temporary name and linked
into place, so two processes creating it at once both end up with one complete file.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

from ..errors import StoreError

#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: Path) -> bool:
    """Raise StoreError for an existing file that cannot be a store; False when there is no file yet."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return False
    if not header:
        raise StoreError(
            f"{path} is empty (0 bytes); it is not a store this runtime created — "
            "move it away to start a new one"
        )
    if header != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not a MirrorNeuron store (not a SQLite database); "
            "move it away or choose another store location"
        )
    return True


def create_file(path: Path, migrate: Callable[[sqlite3.Connection], None], timeout: float) -> None:
    """Build a new store with ``migrate`` under a temporary name, then link it to ``path``.

    If another process created ``path`` meanwhile, its file is kept and this one dropped.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    try:
        conn = sqlite3.connect(temp, timeout=timeout, isolation_level=None)
        try:
            migrate(conn)  # rollback journal: once committed, all of it is in the file
        finally:
            conn.close()
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links on this file system: a rename, unless it exists by now
            if not path.exists():
                os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
        Path(f"{temp}-journal").unlink(missing_ok=True)
