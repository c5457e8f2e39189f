"""A store file that is not ours is refused by name, left untouched, and never turned into a store.

Before, a 0-byte file was silently made a new, empty store (hiding whatever it should have
been), and ``mn serve`` on a corrupt file printed a traceback from inside its start-up.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirror_neuron.errors import StoreError
from mirror_neuron.store import SQLiteStore, open_store

EMPTY = "is empty (0 bytes); it is not a store this runtime created — move it away to start a new one"
NOT_OURS = "is not a MirrorNeuron store (not a SQLite database)"


def test_an_empty_file_is_refused_and_left_empty(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    db.touch()
    with pytest.raises(StoreError, match=re.escape(f"{db} {EMPTY}")):
        SQLiteStore(db)
    assert db.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.db"]  # no -wal, -shm or temporary file


@pytest.mark.parametrize(
    "content",
    [b"\x00" * 4096, os.urandom(8192), b"job_id,status\nj1,running\n", b"SQLite"],
    ids=["zeros", "random", "text", "short"],
)
def test_a_file_that_is_not_sqlite_is_refused_by_name_and_untouched(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "jobs.db"
    db.write_bytes(content)
    with pytest.raises(StoreError, match=re.escape(f"{db} {NOT_OURS}")):
        SQLiteStore(db)
    assert db.read_bytes() == content


def test_a_database_of_another_application_names_the_application_id(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA application_id = 42")
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(StoreError, match=r"not a MirrorNeuron store \(application_id mismatch: 0x0000002a"):
        SQLiteStore(db)


def test_the_default_directory_store_refuses_an_empty_file_too(tmp_path: Path) -> None:
    (tmp_path / "mirror_neuron.db").touch()
    with pytest.raises(StoreError, match=re.escape(EMPTY)):
        open_store(None, data_dir=tmp_path)


def test_a_missing_file_is_created_and_opens_again(tmp_path: Path) -> None:
    db = tmp_path / "new" / "jobs.db"
    SQLiteStore(db).close()
    assert db.read_bytes().startswith(b"SQLite format 3\x00")
    with SQLiteStore(db) as store:
        store.create_job({"job_id": "j1", "status": "pending"})
        assert store.get_job("j1") == {"job_id": "j1", "status": "pending"}
    assert not [p for p in db.parent.iterdir() if p.name.endswith(".new")]


def test_many_openers_of_a_new_file_all_get_the_same_store(tmp_path: Path) -> None:
    """A new file is never seen empty, so no opener refuses another one's new store."""
    db = tmp_path / "jobs.db"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_it(n: int) -> None:
        barrier.wait()
        try:
            with SQLiteStore(db) as store:
                store.create_job({"job_id": f"j{n}", "status": "pending"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with SQLiteStore(db) as store:
        assert len(store.list_jobs()) == 8


def mn(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(data_dir)}
    env.pop("MIRROR_NEURON_STORE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "mirror_neuron", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "content,message", [(b"", EMPTY), (os.urandom(4096), NOT_OURS)], ids=["empty", "corrupt"]
)
@pytest.mark.parametrize("command", [("job", "list"), ("serve", "--port", "0")], ids=["job-list", "serve"])
def test_the_cli_says_so_in_one_line_and_exits_non_zero(
    tmp_path: Path, content: bytes, message: str, command: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "mirror_neuron.db"
    db.write_bytes(content)
    out = mn("--data-dir", str(data), *command, data_dir=tmp_path / "elsewhere")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {db} {message}"), out.stderr
    assert db.read_bytes() == content
