"""SQLite-only guarantees: sharing one file between instances and processes, and failing cleanly."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.errors import StoreError
from mirror_neuron.events import Event
from mirror_neuron.store import SQLiteStore, WriteBatch
from mirror_neuron.store import sqlite as sqlite_module
from mirror_neuron.store.sqlite import SCHEMA_VERSION


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db) as opened:
        yield opened


def events(job_id: str, first: int, last: int, **fields: Any) -> list[Event]:
    return [Event(seq, "tick", job_id, 1_700_000_000.0 + seq, **fields) for seq in range(first, last + 1)]


def full_batch(job_id: str = "j1", status: str = "running") -> WriteBatch:
    return WriteBatch(
        jobs=[{"job_id": job_id, "status": status, "updated_at": "2024-01-01T00:00:00.000Z"}],
        events={job_id: events(job_id, 1, 5)},
        agents={job_id: [{"agent_id": "a", "processed_messages": 5}]},
    )


def snapshot(store: SQLiteStore, job_id: str = "j1") -> tuple[Any, ...]:
    return store.get_job(job_id), store.read_events(job_id), store.get_agents(job_id)


def raw(path: Path, sql: str) -> list[Any]:
    """Run SQL on the file outside the store, as another tool would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(sql).fetchall()


# -- location and format ----------------------------------------------------------------------


def test_url_names_the_absolute_path_and_writes_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SQLiteStore("relative.db") as store:
        assert store.blocking is True
        assert store.path == tmp_path / "relative.db"
        assert store.url == f"sqlite://{tmp_path}/relative.db"
        assert store.url.startswith("sqlite:///")


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with SQLiteStore(path) as store:
        store.write_batch(full_batch())
    assert path.is_file()


def test_file_is_in_wal_mode_at_the_current_schema_version(store: SQLiteStore, db: Path) -> None:
    assert raw(db, "PRAGMA journal_mode") == [("wal",)]
    assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    tables = {name for (name,) in raw(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"jobs", "events", "agents", "mailbox", "blobs", "leases", "nodes"}


def test_event_rows_keep_columns_and_only_payload_and_extra_as_json(store: SQLiteStore, db: Path) -> None:
    store.write_batch(
        WriteBatch(
            events={"j1": [Event(1, "tick", "j1", 2.5, agent_id="a", payload={"n": 1}, extra={"x": 2})]}
        )
    )
    [(seq, type_, agent_id, ts, data)] = raw(db, "SELECT seq, type, agent_id, ts, data FROM events")
    assert (seq, type_, agent_id, ts) == (1, "tick", "a", 2.5)
    assert sqlite_module.loads(data) == [0, {"n": 1}, {"x": 2}]
    assert store.read_events("j1")[0] == Event(1, "tick", "j1", 2.5, "a", {"n": 1}, {"x": 2}).to_dict()


def test_message_summary_payloads_round_trip_as_dicts(store: SQLiteStore) -> None:
    summary = (7, "runtime", "a", "init", "command", "application/json", "identity", None)
    store.write_batch(
        WriteBatch(events={"j1": [Event(1, "agent_message_received", "j1", 2.5, "a", summary)]})
    )
    payload = store.read_events("j1")[0]["payload"]
    assert payload["type"] == "init" and payload["from"] == "runtime" and payload["to"] == "a"
    assert payload["message_id"].endswith("7") and len(payload["message_id"]) > 1


# -- sharing one file -------------------------------------------------------------------------


def test_second_instance_on_the_same_file_sees_committed_data(db: Path) -> None:
    with SQLiteStore(db) as first, SQLiteStore(db) as second:
        first.write_batch(full_batch())
        assert snapshot(second) == snapshot(first)
        second.write_batch(WriteBatch(events={"j1": events("j1", 6, 6)}))
        assert first.count_events("j1") == 6


def test_data_survives_close_and_reopen(db: Path) -> None:
    with SQLiteStore(db) as store:
        store.create_job({"job_id": "j0", "status": "pending"})
        store.write_batch(full_batch())
        before = snapshot(store)
    with SQLiteStore(db) as store:
        assert snapshot(store) == before
        assert store.get_job("j0") == {"job_id": "j0", "status": "pending"}


WRITER = """
import sys
from mirror_neuron.events import Event
from mirror_neuron.store import SQLiteStore, WriteBatch

path, name, batches, per_batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.stdin.readline()  # wait for the parent's "go", so that the processes overlap
with SQLiteStore(path) as store:
    for n in range(batches):
        first = n * per_batch + 1
        store.write_batch(WriteBatch(
            jobs=[{"job_id": name, "status": "completed" if n == batches - 1 else "running", "n": n}],
            events={name: [Event(s, "tick", name, float(s)) for s in range(first, first + per_batch)]},
            agents={name: [{"agent_id": f"w{n % 4}", "n": n}], "shared": [{"agent_id": name, "n": n}]},
        ))
print("ok")
"""


def test_concurrent_processes_write_one_file_without_errors_or_lost_rows(db: Path) -> None:
    names, batches, per_batch = ["p0", "p1", "p2"], 60, 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", WRITER, str(db), name, str(batches), str(per_batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        # Read while they write: every count seen must be a whole number of batches.
        with SQLiteStore(db) as reader:
            seen: set[int] = set()
            while any(proc.poll() is None for proc in procs):
                seen.update(reader.count_events(name) for name in names)
            outputs = [proc.communicate(timeout=120) for proc in procs]
            assert [(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs, strict=True)] == [
                (0, "ok\n", "")
            ] * len(procs)
            assert all(count % per_batch == 0 for count in seen), sorted(seen)
            for name in names:
                assert reader.count_events(name) == batches * per_batch
                assert [e["seq"] for e in reader.read_events(name)] == list(range(1, batches * per_batch + 1))
                assert reader.get_job(name) == {"job_id": name, "status": "completed", "n": batches - 1}
                assert [a["agent_id"] for a in reader.get_agents(name)] == ["w0", "w1", "w2", "w3"]
            assert reader.get_agents("shared") == [{"agent_id": name, "n": batches - 1} for name in names]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_store_is_usable_from_many_threads(store: SQLiteStore) -> None:
    errors: list[BaseException] = []

    def work(job_id: str) -> None:
        try:
            for n in range(20):
                store.write_batch(WriteBatch(events={job_id: events(job_id, n * 10 + 1, n * 10 + 10)}))
                assert store.count_events(job_id) == (n + 1) * 10
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [store.count_events(f"t{i}") for i in range(8)] == [200] * 8


def test_connections_of_finished_threads_are_closed(store: SQLiteStore) -> None:
    def read() -> None:
        store.count_events("j1")

    for _ in range(5):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    # Each new connection first closes those of threads that have ended.
    assert len(store._conns) <= 2


# -- replay -----------------------------------------------------------------------------------


def test_replaying_the_same_batch_is_idempotent(store: SQLiteStore) -> None:
    store.write_batch(full_batch())
    before = snapshot(store)
    store.write_batch(full_batch())
    assert snapshot(store) == before
    assert store.count_events("j1") == 5


def test_replayed_event_seq_keeps_the_first_write(store: SQLiteStore) -> None:
    store.write_batch(WriteBatch(events={"j1": [Event(1, "first", "j1", 1.0)]}))
    store.write_batch(WriteBatch(events={"j1": [Event(1, "second", "j1", 2.0), Event(2, "next", "j1", 3.0)]}))
    assert [(e["seq"], e["type"]) for e in store.read_events("j1")] == [(1, "first"), (2, "next")]


# -- failures ---------------------------------------------------------------------------------


def test_failed_batch_is_rolled_back_whole(store: SQLiteStore, db: Path) -> None:
    store.write_batch(full_batch())
    before = snapshot(store)
    # A failure in the last statement of the batch, after jobs and events were inserted.
    raw(
        db,
        "CREATE TRIGGER boom BEFORE INSERT ON agents WHEN NEW.agent_id = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'injected'); END",
    )
    bad = WriteBatch(
        jobs=[{"job_id": "j1", "status": "completed"}, {"job_id": "j2", "status": "running"}],
        events={"j1": events("j1", 6, 9), "j2": events("j2", 1, 3)},
        agents={"j1": [{"agent_id": "a", "processed_messages": 9}, {"agent_id": "boom"}]},
    )
    with pytest.raises(StoreError, match=r"store\.db.*injected"):
        store.write_batch(bad)
    assert snapshot(store) == before
    assert store.get_job("j2") is None
    assert store.count_events("j2") == 0
    store.write_batch(WriteBatch(events={"j1": events("j1", 6, 6)}))  # the store is still usable
    assert store.count_events("j1") == 6


def test_full_disk_rolls_back_the_batch_and_keeps_earlier_data(store: SQLiteStore, db: Path) -> None:
    store.write_batch(full_batch())
    before = snapshot(store)
    pages = store._conn().execute("PRAGMA page_count").fetchone()[0]
    store._conn().execute(f"PRAGMA max_page_count = {pages + 2}")  # this connection's "disk" is nearly full
    big = WriteBatch(
        jobs=[{"job_id": "j1", "status": "failed"}], events={"j1": events("j1", 6, 5000, payload="x" * 200)}
    )
    with pytest.raises(StoreError, match=r"store\.db.*disk is full"):
        store.write_batch(big)
    assert snapshot(store) == before


def test_read_only_database_gives_store_error_and_keeps_data(store: SQLiteStore) -> None:
    # Tests run as root, which ignores file modes: make the connection read-only instead.
    store.write_batch(full_batch())
    before = snapshot(store)
    store._conn().execute("PRAGMA query_only = 1")
    with pytest.raises(StoreError, match=r"store\.db.*read-only"):
        store.write_batch(full_batch("j2"))
    with pytest.raises(StoreError, match=r"store\.db"):
        store.delete_job("j1")
    assert snapshot(store) == before


def test_location_under_a_regular_file_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    path = blocker / "store.db"
    with pytest.raises(StoreError, match=re.escape(str(path))):
        SQLiteStore(path)
    assert blocker.read_text() == "x"


def test_directory_in_place_of_the_file_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    path.mkdir()
    with pytest.raises(StoreError, match=re.escape(str(path))):
        SQLiteStore(path)


def test_garbage_file_gives_store_error_and_is_left_untouched(db: Path) -> None:
    garbage = bytes(range(256)) * 64
    db.write_bytes(garbage)
    with pytest.raises(StoreError, match=re.escape(str(db)) + ".*not a (SQLite )?database"):
        SQLiteStore(db)
    assert db.read_bytes() == garbage


def test_damaged_database_gives_store_error(db: Path) -> None:
    with SQLiteStore(db) as store:
        for n in range(20):
            store.write_batch(
                WriteBatch(events={"j1": events("j1", n * 50 + 1, n * 50 + 50, payload="y" * 100)})
            )
    data = bytearray(db.read_bytes())
    page = 4096
    data[2 * page :] = b"\xff" * (len(data) - 2 * page)  # keep the header, destroy the b-trees
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=re.escape(str(db))), SQLiteStore(db) as store:
        store.read_events("j1")
        store.count_events("j1")


def test_database_of_another_application_is_refused_and_untouched(db: Path) -> None:
    raw(db, "CREATE TABLE notes (body TEXT)")
    with pytest.raises(StoreError, match=re.escape(f"{db} is a SQLite database of another application")):
        SQLiteStore(db)
    assert raw(db, "SELECT name FROM sqlite_master") == [("notes",)]


def test_database_from_a_newer_release_is_refused(db: Path) -> None:
    SQLiteStore(db).close()
    raw(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db)


def test_writer_blocked_past_the_busy_timeout_gets_store_error(
    db: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT", 0.05)
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with SQLiteStore(db) as waiting:
            with pytest.raises(StoreError, match=r"store\.db.*locked"):
                waiting.write_batch(full_batch())
            other.execute("COMMIT")
            waiting.write_batch(full_batch())
            assert waiting.count_events("j1") == 5


def test_unencodable_values_give_store_error_and_write_nothing(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="JSON"):
        store.write_batch(
            WriteBatch(jobs=[{"job_id": "j1"}], events={"j1": [Event(1, "t", "j1", 1.0, payload=object())]})
        )
    with pytest.raises(StoreError, match="JSON"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1", "bad": object()}]))
    assert store.get_job("j1") is None
    assert store.count_events("j1") == 0


def test_records_without_ids_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="job_id"):
        store.create_job({"status": "pending"})
    with pytest.raises(StoreError, match="agent_id"):
        store.write_batch(WriteBatch(agents={"j1": [{"n": 1}]}))


def test_closed_store_raises_store_error(db: Path) -> None:
    store = SQLiteStore(db)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_job("j1")
    with pytest.raises(StoreError, match="closed"):
        store.write_batch(full_batch())
    store.close()  # closing twice is harmless


def test_message_ids_read_by_another_process_are_the_writers(tmp_path: Path) -> None:
    """Ids kept as counters on the hot path are stored in their string form, not re-formatted by readers."""
    import subprocess
    import sys

    from mirror_neuron.ids import fmt

    db = tmp_path / "ids.db"
    summary = (42, "runtime", "a", "init", "command", "application/json", "identity", None)
    with SQLiteStore(db) as writer:
        writer.write_batch(
            WriteBatch(events={"j": [Event(1, "agent_message_received", "j", 1.0, "a", summary)]})
        )
    code = (
        "import json, sys; from mirror_neuron.store import SQLiteStore; "
        f"print(SQLiteStore({str(db)!r}).read_events('j')[0]['payload']['message_id'])"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == fmt(42)
