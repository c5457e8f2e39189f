"""The Store protocol, checked against every store: they must be interchangeable."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mirror_neuron.errors import InvalidCursor, StoreError
from mirror_neuron.events import Event
from mirror_neuron.store import TERMINAL_STATUSES, Store, WriteBatch

TS = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z; a binary-exact fraction, so the ISO text is exact
TS_ISO = "2023-11-14T22:13:20.250Z"


def job(job_id: str, status: str = "running", updated_at: str | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "job_id": job_id,
        "graph_id": "graph",
        "status": status,
        "submitted_at": "2024-01-01T00:00:00.000Z",
        "updated_at": updated_at,
        "result": None,
    }
    record.update(fields)
    return record


def events(job_id: str, first: int, last: int) -> list[Event]:
    return [
        Event(seq, "agent_message_received", job_id, TS + seq, agent_id="a") for seq in range(first, last + 1)
    ]


def seqs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["seq"] for row in rows]


# -- identity ---------------------------------------------------------------------------------


def test_store_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.blocking, bool)
    assert isinstance(store.url, str)
    assert store.url


# -- job records ------------------------------------------------------------------------------


def test_created_job_reads_back_equal(store: Store) -> None:
    record = job("j1", "pending", manifest_ref={"graph_id": "graph", "job_path": "/x"}, root_agent_ids=["a"])
    store.create_job(record)
    assert store.get_job("j1") == record


def test_create_job_rejects_an_existing_id_and_keeps_the_original(store: Store) -> None:
    store.create_job(job("j1", "pending"))
    with pytest.raises(StoreError, match="j1"):
        store.create_job(job("j1", "running"))
    assert store.get_job("j1") == job("j1", "pending")


def test_get_job_of_unknown_id_is_none(store: Store) -> None:
    assert store.get_job("nope") is None


def test_returned_records_are_copies(store: Store) -> None:
    store.create_job(job("j1", result={"output": [1]}))
    store.get_job("j1")["result"]["output"].append(2)  # type: ignore[index]
    store.list_jobs()[0]["status"] = "mutated"
    assert store.get_job("j1") == job("j1", result={"output": [1]})


def test_list_jobs_is_newest_first_by_updated_at_falling_back_to_submitted_at(store: Store) -> None:
    store.create_job(job("old", updated_at="2024-01-02T00:00:00.000Z"))
    store.create_job(job("new", updated_at="2024-01-04T00:00:00.000Z"))
    store.create_job(job("never_updated", updated_at=None, submitted_at="2024-01-03T00:00:00.000Z"))
    store.create_job(job("empty_updated", updated_at="", submitted_at="2024-01-01T12:00:00.000Z"))
    assert [j["job_id"] for j in store.list_jobs()] == ["new", "never_updated", "old", "empty_updated"]


def test_list_jobs_breaks_ties_newest_created_first(store: Store) -> None:
    for job_id in ("b", "c", "a"):
        store.create_job(job(job_id, updated_at="2024-01-01T00:00:00.000Z"))
    assert [j["job_id"] for j in store.list_jobs()] == ["a", "c", "b"]


def test_list_jobs_order_follows_updates(store: Store) -> None:
    store.create_job(job("first", updated_at="2024-01-01T00:00:00.000Z"))
    store.create_job(job("second", updated_at="2024-01-02T00:00:00.000Z"))
    store.write_batch(WriteBatch(jobs=[job("first", updated_at="2024-01-03T00:00:00.000Z")]))
    assert [j["job_id"] for j in store.list_jobs()] == ["first", "second"]


def test_list_jobs_limit_keeps_the_newest(store: Store) -> None:
    for day in range(1, 6):
        store.create_job(job(f"j{day}", updated_at=f"2024-01-0{day}T00:00:00.000Z"))
    assert [j["job_id"] for j in store.list_jobs(limit=2)] == ["j5", "j4"]
    assert store.list_jobs(limit=0) == []
    assert len(store.list_jobs(limit=10)) == 5


def test_list_jobs_can_leave_out_terminal_jobs(store: Store) -> None:
    statuses = ["pending", "running", "paused", *sorted(TERMINAL_STATUSES)]
    for index, status in enumerate(statuses):
        store.create_job(job(f"j{index}", status, updated_at=f"2024-01-0{index + 1}T00:00:00.000Z"))
    store.create_job({"job_id": "no_status", "submitted_at": "2023-01-01T00:00:00.000Z"})
    live = store.list_jobs(include_terminal=False)
    assert [j["job_id"] for j in live] == ["j2", "j1", "j0", "no_status"]
    assert len(store.list_jobs()) == len(statuses) + 1
    assert [j["job_id"] for j in store.list_jobs(include_terminal=False, limit=1)] == ["j2"]


def ids(jobs: list[dict[str, Any]]) -> list[str]:
    return [j["job_id"] for j in jobs]


def page_through(store: Store, size: int, between: Any = None, **filters: Any) -> list[str]:
    """Every job id over all pages of ``size``, calling ``between()`` after each page."""
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page = store.list_jobs(limit=size, cursor=cursor, **filters)
        assert len(page) <= size
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            return seen
        assert isinstance(cursor, str) and page
        if between is not None:
            between()
    raise AssertionError("the cursors never ended")


def test_list_jobs_filters_by_status(store: Store) -> None:
    statuses = ["pending", "running", "paused", "completed", "failed", "cancelled", "running"]
    for index, status in enumerate(statuses):
        store.create_job(job(f"j{index}", status, updated_at=f"2024-01-0{index + 1}T00:00:00.000Z"))
    store.create_job({"job_id": "no_status", "submitted_at": "2023-01-01T00:00:00.000Z"})
    assert ids(store.list_jobs(status="running")) == ["j6", "j1"]
    assert ids(store.list_jobs(status=["failed", "pending"])) == ["j4", "j0"]
    assert ids(store.list_jobs(status=("completed",), limit=1)) == ["j3"]
    assert ids(store.list_jobs(status=frozenset({"paused", "cancelled"}), include_terminal=False)) == ["j2"]
    assert store.list_jobs(status="cancelled", include_terminal=False) == []
    assert store.list_jobs(status="no-such-status") == []
    assert store.list_jobs(status=[]) == []


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 50])
def test_list_jobs_cursor_pages_through_every_job_once_in_order(store: Store, size: int) -> None:
    for index in range(8):  # ties in updated_at: the creation order must split them
        store.create_job(job(f"j{index}", updated_at=f"2024-01-0{index // 3 + 1}T00:00:00.000Z"))
    assert page_through(store, size) == ids(store.list_jobs())
    assert store.list_jobs().next_cursor is None
    assert store.list_jobs(limit=8).next_cursor is None
    assert store.list_jobs(limit=7).next_cursor is not None


def test_list_jobs_cursor_with_status_filters(store: Store) -> None:
    for index in range(12):
        status = ("running", "completed", "paused")[index % 3]
        store.create_job(job(f"j{index}", status, updated_at=f"2024-01-{index + 1:02d}T00:00:00.000Z"))
    for filters in ({"status": "running"}, {"status": ["running", "completed"]}, {"include_terminal": False}):
        expected = ids(store.list_jobs(**filters))
        assert expected and page_through(store, 2, **filters) == expected


def test_list_jobs_cursor_is_stable_while_jobs_are_added(store: Store) -> None:
    for index in range(10):
        store.create_job(job(f"old{index}", updated_at=f"2024-01-{index + 1:02d}T00:00:00.000Z"))
    before = ids(store.list_jobs())
    added = iter(range(100))

    def add_jobs() -> None:
        n = next(added)
        # Newer jobs go in front of the pages; one as old as the oldest goes among the rest.
        store.create_job(job(f"new{n}", updated_at=f"2025-01-{n + 1:02d}T00:00:00.000Z"))
        store.create_job(job(f"late{n}", updated_at="2024-01-01T00:00:00.000Z"))

    seen = page_through(store, 3, between=add_jobs)
    assert len(seen) == len(set(seen))  # nothing twice
    assert [i for i in seen if i.startswith("old")] == before  # every job that was there, in order
    assert not any(i.startswith("new") for i in seen)


def test_list_jobs_cursor_never_repeats_a_job_updated_after_it_was_listed(store: Store) -> None:
    for index in range(6):
        store.create_job(job(f"j{index}", updated_at=f"2024-01-0{index + 1}T00:00:00.000Z"))
    first = store.list_jobs(limit=2)
    assert ids(first) == ["j5", "j4"]
    store.write_batch(WriteBatch(jobs=[job("j5", "completed", updated_at="2024-02-01T00:00:00.000Z")]))
    store.delete_job("j3")
    rest = store.list_jobs(cursor=first.next_cursor)
    assert ids(rest) == ["j2", "j1", "j0"] and rest.next_cursor is None


def test_list_jobs_status_filter_skips_many_other_jobs(store: Store) -> None:
    """Few matches among many others (a store reading its index in chunks must read on)."""
    others = [
        job(f"done{i:04d}", "completed", updated_at=f"2024-02-01T{i // 60:02d}:{i % 60:02d}:00Z")
        for i in range(700)
    ]
    store.write_batch(WriteBatch(jobs=[job("oldest", updated_at="2024-01-01T00:00:00Z"), *others]))
    store.create_job(job("newest", updated_at="2024-03-01T00:00:00Z"))
    assert page_through(store, 1, status="running") == ["newest", "oldest"]
    assert ids(store.list_jobs(status="running", limit=5)) == ["newest", "oldest"]
    assert len(page_through(store, 300, status="completed")) == 700


@pytest.mark.parametrize("cursor", ["", "garbage!", "W10", "WyJ4Il0", "WyJ4IiwgLTFd", "WzEsIDJd", "bnVsbA"])
def test_list_jobs_refuses_a_cursor_it_did_not_give(store: Store, cursor: str) -> None:
    store.create_job(job("j1"))
    with pytest.raises(InvalidCursor, match="cursor"):
        store.list_jobs(limit=1, cursor=cursor)


def test_job_ids_with_prefix_are_the_sorted_matches(store: Store) -> None:
    ids = ["run_b2", "run_a1", "run_a10", "other", "run_", "ru", "run\U0010ffffx", "rum"]
    for job_id in ids:
        store.create_job(job(job_id))
    assert store.job_ids_with_prefix("run_a") == ["run_a1", "run_a10"]
    assert store.job_ids_with_prefix("run_a1") == ["run_a1", "run_a10"]
    assert store.job_ids_with_prefix("run_a10") == ["run_a10"]
    assert store.job_ids_with_prefix("run_") == ["run_", "run_a1", "run_a10", "run_b2"]
    assert store.job_ids_with_prefix("run") == ["run_", "run_a1", "run_a10", "run_b2", "run\U0010ffffx"]
    assert store.job_ids_with_prefix("run_", limit=2) == ["run_", "run_a1"]
    assert store.job_ids_with_prefix("run\U0010ffff") == ["run\U0010ffffx"]
    assert store.job_ids_with_prefix("nothing") == []
    assert store.job_ids_with_prefix("") == sorted(ids)
    store.delete_job("run_a1")
    assert store.job_ids_with_prefix("run_a") == ["run_a10"]


@pytest.mark.parametrize("prefix", ["a*", "a?", "a[", "a[b]", "a\\", "a]", "a%", "a_"])
def test_job_ids_with_prefix_match_glob_characters_literally(store: Store, prefix: str) -> None:
    ids = ("a*1", "a?1", "a[1", "a[b]1", "a\\1", "a]1", "a%1", "a_1", "ab1", "ax", "b")
    for job_id in ids:
        store.create_job(job(job_id))
    assert store.job_ids_with_prefix(prefix) == sorted(i for i in ids if i.startswith(prefix))
    assert prefix + "1" in store.job_ids_with_prefix(prefix)


def test_write_batch_replaces_the_whole_job_record(store: Store) -> None:
    store.create_job(job("j1", "pending", daemon=True))
    store.write_batch(WriteBatch(jobs=[job("j1", "running")]))
    assert store.get_job("j1") == job("j1", "running")


def test_write_batch_creates_a_job_it_has_not_seen(store: Store) -> None:
    store.write_batch(WriteBatch(jobs=[job("j1", "running")]))
    assert store.get_job("j1") == job("j1", "running")


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_job_record_is_never_overwritten(store: Store, terminal: str) -> None:
    final = job("j1", terminal, result={"output": "done"})
    store.create_job(job("j1", "pending"))
    store.write_batch(WriteBatch(jobs=[final]))
    store.write_batch(WriteBatch(jobs=[job("j1", "running")]))
    store.write_batch(WriteBatch(jobs=[job("j1", "failed" if terminal != "failed" else "completed")]))
    assert store.get_job("j1") == final


def test_within_one_batch_the_first_terminal_record_wins(store: Store) -> None:
    final = job("j1", "completed")
    store.write_batch(
        WriteBatch(jobs=[job("j1", "running"), final, job("j1", "failed"), job("j1", "running")])
    )
    assert store.get_job("j1") == final


def test_a_job_without_status_can_be_updated(store: Store) -> None:
    store.create_job({"job_id": "j1"})
    store.write_batch(WriteBatch(jobs=[job("j1", "running")]))
    assert store.get_job("j1") == job("j1", "running")


# -- events -----------------------------------------------------------------------------------


def test_events_read_back_oldest_first_across_batches(store: Store) -> None:
    store.write_batch(WriteBatch(events={"j1": events("j1", 1, 3)}))
    store.write_batch(WriteBatch(events={"j1": events("j1", 4, 7)}))
    assert seqs(store.read_events("j1")) == [1, 2, 3, 4, 5, 6, 7]
    assert store.count_events("j1") == 7


def test_read_events_after_and_limit_page_through_the_log(store: Store) -> None:
    store.write_batch(WriteBatch(events={"j1": events("j1", 1, 10)}))
    assert seqs(store.read_events("j1", after=7)) == [8, 9, 10]
    assert seqs(store.read_events("j1", after=2, limit=3)) == [3, 4, 5]
    assert seqs(store.read_events("j1", limit=2)) == [1, 2]
    assert store.read_events("j1", after=10) == []
    assert store.read_events("j1", limit=0) == []
    pages, after = [], 0
    while page := store.read_events("j1", after=after, limit=4):
        pages.append(seqs(page))
        after = page[-1]["seq"]
    assert pages == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def test_events_are_kept_per_job(store: Store) -> None:
    store.write_batch(WriteBatch(events={"j1": events("j1", 1, 3), "j2": events("j2", 1, 2)}))
    assert store.count_events("j1") == 3
    assert store.count_events("j2") == 2
    assert {e["job_id"] for e in store.read_events("j2")} == {"j2"}


def test_unknown_job_has_no_events_and_no_agents(store: Store) -> None:
    assert store.read_events("nope") == []
    assert store.count_events("nope") == 0
    assert store.get_agents("nope") == []


def test_event_dict_has_the_original_shape(store: Store) -> None:
    runtime = Event(1, "job_pending", "j1", TS)
    agent = Event(2, "sensor_observed", "j1", TS, agent_id="s1", payload={"count": 3})
    extra = Event(3, "job_failed", "j1", TS, agent_id="w", extra={"reason": "boom"})
    store.write_batch(WriteBatch(events={"j1": [runtime, agent, extra]}))
    assert store.read_events("j1") == [
        {"type": "job_pending", "job_id": "j1", "timestamp": TS_ISO, "seq": 1},
        {
            "type": "sensor_observed",
            "job_id": "j1",
            "timestamp": TS_ISO,
            "agent_id": "s1",
            "payload": {"count": 3},
            "seq": 2,
        },
        {
            "type": "job_failed",
            "job_id": "j1",
            "timestamp": TS_ISO,
            "agent_id": "w",
            "reason": "boom",
            "seq": 3,
        },
    ]


# -- agents -----------------------------------------------------------------------------------


def test_agent_snapshots_are_upserted_by_agent_id_and_sorted(store: Store) -> None:
    store.write_batch(WriteBatch(agents={"j1": [{"agent_id": "b", "n": 1}, {"agent_id": "a", "n": 1}]}))
    store.write_batch(WriteBatch(agents={"j1": [{"agent_id": "c", "n": 1}, {"agent_id": "b", "n": 2}]}))
    assert store.get_agents("j1") == [
        {"agent_id": "a", "n": 1},
        {"agent_id": "b", "n": 2},
        {"agent_id": "c", "n": 1},
    ]


def test_agent_snapshots_are_kept_per_job(store: Store) -> None:
    store.write_batch(WriteBatch(agents={"j1": [{"agent_id": "a"}], "j2": [{"agent_id": "z"}]}))
    assert store.get_agents("j1") == [{"agent_id": "a"}]
    assert store.get_agents("j2") == [{"agent_id": "z"}]


# -- delete -----------------------------------------------------------------------------------


def test_delete_job_removes_record_events_and_agents(store: Store) -> None:
    store.create_job(job("j1"))
    store.write_batch(WriteBatch(events={"j1": events("j1", 1, 3)}, agents={"j1": [{"agent_id": "a"}]}))
    assert store.delete_job("j1") is True
    assert store.get_job("j1") is None
    assert store.read_events("j1") == []
    assert store.count_events("j1") == 0
    assert store.get_agents("j1") == []
    assert store.list_jobs() == []
    assert store.delete_job("j1") is False


def test_delete_job_leaves_other_jobs_intact(store: Store) -> None:
    for job_id in ("j1", "j2"):
        store.create_job(job(job_id))
        store.write_batch(
            WriteBatch(events={job_id: events(job_id, 1, 2)}, agents={job_id: [{"agent_id": "a"}]})
        )
    store.delete_job("j1")
    assert store.get_job("j2") == job("j2")
    assert store.count_events("j2") == 2
    assert store.get_agents("j2") == [{"agent_id": "a"}]


def test_a_deleted_id_can_be_created_again(store: Store) -> None:
    store.create_job(job("j1", "completed"))
    store.delete_job("j1")
    store.create_job(job("j1", "pending"))
    assert store.get_job("j1") == job("j1", "pending")


# -- batches ----------------------------------------------------------------------------------


def test_empty_batch_is_falsy_and_writes_nothing(store: Store) -> None:
    assert not WriteBatch()
    store.write_batch(WriteBatch())
    assert store.list_jobs() == []


def test_batch_applies_jobs_events_and_agents_together(store: Store) -> None:
    store.write_batch(
        WriteBatch(
            jobs=[job("j1", "running")],
            events={"j1": events("j1", 1, 2)},
            agents={"j1": [{"agent_id": "a", "processed_messages": 2}]},
        )
    )
    assert store.get_job("j1") == job("j1", "running")
    assert store.count_events("j1") == 2
    assert store.get_agents("j1") == [{"agent_id": "a", "processed_messages": 2}]


def test_readers_never_see_half_a_batch(store: Store) -> None:
    """A reader thread only ever sees whole batches, however the writes interleave with it."""
    per_batch, batches = 50, 40
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(batches):
                first = n * per_batch + 1
                store.write_batch(WriteBatch(events={"j1": events("j1", first, first + per_batch - 1)}))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        seen.append(len(store.read_events("j1")))
    writer.join()
    assert errors == []
    seen.append(len(store.read_events("j1")))
    assert all(count % per_batch == 0 for count in seen), sorted(set(seen))
    assert seen[-1] == per_batch * batches
