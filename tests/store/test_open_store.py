"""open_store: every accepted spelling of a store location, and clear errors for the rest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mirror_neuron.store as store_pkg
from mirror_neuron.errors import StoreError
from mirror_neuron.store import MemoryStore, SQLiteStore, Store, open_store


def opened_path(url: str | Path | None, **kwargs: object) -> Path:
    store = open_store(url, **kwargs)  # type: ignore[arg-type]
    try:
        assert isinstance(store, SQLiteStore)
        return store.path
    finally:
        store.close()


def test_memory_url_opens_a_memory_store() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    assert isinstance(store, Store)


def test_sqlite_url_with_absolute_path(tmp_path: Path) -> None:
    assert opened_path(f"sqlite://{tmp_path}/a.db") == tmp_path / "a.db"


def test_sqlite_url_with_four_slashes_is_absolute_too(tmp_path: Path) -> None:
    # Config.from_env builds f"sqlite:///{data_dir / 'mirror_neuron.db'}" from an absolute data_dir.
    assert opened_path(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"


def test_sqlite_url_with_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert opened_path("sqlite://sub/rel.db") == tmp_path / "sub" / "rel.db"


def test_store_url_round_trips_through_open_store(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "x.db") as store:
        url = store.url
    assert opened_path(url) == tmp_path / "x.db"


@pytest.mark.parametrize("name", ["jobs.db", "jobs.sqlite", "jobs.SQLITE3"])
def test_plain_database_file_path(tmp_path: Path, name: str) -> None:
    assert opened_path(str(tmp_path / name)) == tmp_path / name
    assert opened_path(tmp_path / name) == tmp_path / name


def test_directory_path_gets_the_default_file_inside(tmp_path: Path) -> None:
    assert opened_path(str(tmp_path)) == tmp_path / "mirror_neuron.db"
    assert opened_path(tmp_path / "new_dir") == tmp_path / "new_dir" / "mirror_neuron.db"


def test_no_url_uses_the_data_dir(tmp_path: Path) -> None:
    assert opened_path(None, data_dir=tmp_path) == tmp_path / "mirror_neuron.db"
    assert opened_path("", data_dir=str(tmp_path)) == tmp_path / "mirror_neuron.db"


# Opening real Redis stores (redis://, rediss://, unix://) is tested in test_redis.py.


def test_redis_event_retention_must_be_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRROR_NEURON_REDIS_EVENT_RETENTION", "lots")
    with pytest.raises(StoreError, match="MIRROR_NEURON_REDIS_EVENT_RETENTION"):
        open_store("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "url",
    [
        "postgres://db/jobs",
        "memory://somewhere",
        "sqlite://",
        "sqlite://:memory:",
        "sqlite:jobs.db",
        "s3://bucket/x",
    ],
)
def test_unsupported_url_gives_store_error_naming_it(url: str) -> None:
    with pytest.raises(StoreError, match=re.escape(repr(url))):
        open_store(url)


def test_existing_file_that_is_not_a_database_path_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    with pytest.raises(StoreError, match=r"notes\.json"):
        open_store(str(notes))
    assert notes.read_text() == "{}"


def test_public_names_are_exported() -> None:
    assert set(store_pkg.__all__) >= {
        "Store",
        "WriteBatch",
        "MemoryStore",
        "SQLiteStore",
        "TERMINAL_STATUSES",
        "LIVE_STATUSES",
        "open_store",
    }
    for name in store_pkg.__all__:
        assert hasattr(store_pkg, name)


@pytest.mark.parametrize(
    "spelling",
    [
        lambda p: f"sqlite:///{p / 'x.db'}",
        lambda p: p / "x.db",
        lambda p: str(p / "x.db"),
        lambda p: str(p / "dir"),
    ],
    ids=["url", "path", "text", "directory"],
)
@pytest.mark.parametrize("where", ["no/such", "."], ids=["no-directory", "existing-directory"])
def test_without_create_a_missing_store_is_store_missing_and_nothing_is_made(
    tmp_path: Path, spelling, where: str
) -> None:
    from mirror_neuron.errors import StoreMissing

    base = tmp_path / where
    with pytest.raises(StoreMissing, match=r"^no store at "):
        open_store(spelling(base), create=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreMissing):
        open_store(None, data_dir=tmp_path / "data", create=False)
    assert list(tmp_path.iterdir()) == []


def test_without_create_an_existing_store_opens_for_reading_and_writing(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "x.db") as made:
        made.create_job({"job_id": "j1", "status": "pending"})
    with open_store(tmp_path / "x.db", create=False) as store:
        assert store.get_job("j1") == {"job_id": "j1", "status": "pending"}
        store.create_job({"job_id": "j2", "status": "pending"})
        assert store.job_ids_with_prefix("j") == ["j1", "j2"]


def test_without_create_a_store_deleted_while_open_is_not_made_again(tmp_path: Path) -> None:
    import threading

    db = tmp_path / "x.db"
    SQLiteStore(db).close()
    store = SQLiteStore(db, create=False)
    try:
        db.unlink()
        errors: list[BaseException] = []

        def read() -> None:  # a new thread opens a new connection
            try:
                store.list_jobs()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        assert len(errors) == 1 and isinstance(errors[0], StoreError)
        assert not db.exists()
    finally:
        store.close()


def test_redact_url_masks_passwords() -> None:
    assert store_pkg.redact_url("redis://:pw@host:6379/0") == "redis://***@host:6379/0"
    assert store_pkg.redact_url("unix:///r.sock?db=0&password=pw") == "unix:///r.sock?db=0&password=***"
    assert store_pkg.redact_url("sqlite:////var/lib/mn.db") == "sqlite:////var/lib/mn.db"
