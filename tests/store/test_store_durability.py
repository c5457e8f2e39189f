"""Durable mailboxes and per-job values, the same on every store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mirror_neuron.store import MemoryStore, SQLiteStore, Store, WriteBatch


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "redis":
        # A real redis-server (tests/store/conftest.py), a fresh namespace per test.
        yield request.getfixturevalue("make_redis_store")()
        return
    s: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield s
    s.close()


def msg(n: int) -> dict:
    return {"envelope": {"message_id": f"m{n}", "type": "t"}, "body": {"n": n}}


def test_queued_mail_is_read_back_in_position_order_per_agent(store: Store) -> None:
    store.write_batch(WriteBatch(messages={"j": [("b", 2, msg(2)), ("a", 5, msg(5)), ("b", 1, msg(1))]}))
    assert store.read_mailboxes("j") == {"a": [(5, msg(5))], "b": [(1, msg(1)), (2, msg(2))]}
    assert store.read_mailboxes("other") == {}


def test_consumed_positions_drop_their_rows_in_the_same_batch(store: Store) -> None:
    store.write_batch(WriteBatch(messages={"j": [("a", p, msg(p)) for p in range(1, 6)]}))
    store.write_batch(WriteBatch(messages={"j": [("a", 6, msg(6))]}, consumed={"j": {"a": 4}}))
    assert [p for p, _ in store.read_mailboxes("j")["a"]] == [5, 6]


def test_rewriting_a_position_is_idempotent(store: Store) -> None:
    store.write_batch(WriteBatch(messages={"j": [("a", 1, msg(1))]}))
    store.write_batch(WriteBatch(messages={"j": [("a", 1, msg(1))]}))
    assert store.read_mailboxes("j") == {"a": [(1, msg(1))]}


def test_blobs_are_named_json_values_per_job(store: Store) -> None:
    store.write_batch(WriteBatch(blobs={"j": {"manifest": {"graph_id": "g"}, "out": [1, 2]}}))
    store.write_batch(WriteBatch(blobs={"j": {"out": [3]}}))
    assert store.get_blob("j", "manifest") == {"graph_id": "g"}
    assert store.get_blob("j", "out") == [3]
    assert store.get_blob("j", "missing") is None


def test_delete_job_removes_mail_and_blobs(store: Store) -> None:
    store.create_job({"job_id": "j", "status": "completed"})
    store.write_batch(WriteBatch(messages={"j": [("a", 1, msg(1))]}, blobs={"j": {"k": 1}}))
    assert store.delete_job("j")
    assert store.read_mailboxes("j") == {} and store.get_blob("j", "k") is None
