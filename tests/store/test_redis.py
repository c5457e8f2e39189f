"""Redis-only guarantees: the original's key layout, pub/sub, retention, replay, the terminal
guard under concurrent writers, surviving a server restart, and failing cleanly.

The contract every store shares is in test_store_contract.py / test_store_durability.py;
these tests run against a real ``redis-server`` (see conftest.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from mirror_neuron.errors import StoreError
from mirror_neuron.events import Event
from mirror_neuron.store import Store, WriteBatch, open_store
from mirror_neuron.store import redis as redis_module
from mirror_neuron.store.keys import DEFAULT_NAMESPACE, Keys
from mirror_neuron.store.redis import RedisStore, redact_url
from redis_server import RedisServer, free_port
from waiting import eventually

MakeStore = Callable[..., RedisStore]
SUMMARY = (7, "runtime", "a", "init", "command", "application/json", "identity", None)


def events(job_id: str, seqs: Any, **fields: Any) -> list[Event]:
    return [Event(seq, "tick", job_id, 1_700_000_000.0 + seq, **fields) for seq in seqs]


def seqs(rows: list[dict[str, Any]]) -> list[int]:
    return [row["seq"] for row in rows]


def keys_of(client: redis.Redis, namespace: str) -> set[str]:
    return {key.decode() for key in client.scan_iter(match=f"{namespace}:*", count=1000)}


@pytest.fixture
def store(make_redis_store: MakeStore) -> RedisStore:
    return make_redis_store()


class _BackoffSpy:
    """Stands in for the ``time`` module of mirror_neuron.store.redis: records each backoff sleep."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> _BackoffSpy:
    """The retry backoff of RedisStore, observed: how often (and how long) it waited to try again."""
    spy = _BackoffSpy()
    monkeypatch.setattr(redis_module, "time", spy)
    return spy


@pytest.fixture
def fresh_raw(fresh_redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(fresh_redis_server.url)
    yield client
    client.close()


# -- opening ----------------------------------------------------------------------------------


def test_open_store_opens_redis_urls_with_the_namespace_from_the_environment(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIRROR_NEURON_REDIS_NAMESPACE", "from_env")
    monkeypatch.setenv("MIRROR_NEURON_REDIS_EVENT_RETENTION", "100")
    for url in (redis_server.url, redis_server.unix_url):
        store = open_store(url)
        try:
            assert isinstance(store, RedisStore) and isinstance(store, Store)
            assert (store.namespace, store.event_retention, store.blocking) == ("from_env", 100, True)
            assert store.url == url
        finally:
            store.close()


def test_namespace_defaults_to_the_originals(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIRROR_NEURON_REDIS_NAMESPACE", raising=False)
    monkeypatch.delenv("MN_REDIS_NAMESPACE", raising=False)
    store = open_store(redis_server.url)
    try:
        assert isinstance(store, RedisStore) and store.namespace == DEFAULT_NAMESPACE == "mirror_neuron"
    finally:
        store.close()


# -- the original's key layout ----------------------------------------------------------------


def test_key_layout_is_the_originals(fresh_redis_server: RedisServer, fresh_raw: redis.Redis) -> None:
    record = {"job_id": "j1", "status": "running", "submitted_at": "2024-01-01T00:00:00.000Z"}
    summary_event = Event(1, "agent_message_received", "j1", 2.5, "a", SUMMARY)
    with RedisStore(fresh_redis_server.url) as store:
        store.create_job(record)
        store.write_batch(
            WriteBatch(
                events={"j1": [summary_event, Event(2, "job_failed", "j1", 3.0, extra={"reason": "x"})]},
                agents={"j1": [{"agent_id": "a", "processed_messages": 1}]},
            )
        )
        ns = "mirror_neuron"
        original = {
            f"{ns}:jobs": b"set",
            f"{ns}:job:j1": b"string",
            f"{ns}:job:j1:events": b"list",
            f"{ns}:job:j1:agents": b"set",
            f"{ns}:job:j1:agent:a": b"string",
        }
        ours = {f"{ns}:job:j1:events:seq", f"{ns}:jobs:recent", f"{ns}:jobs:live", f"{ns}:jobs:order"}
        ours.add(f"{ns}:jobs:created")
        assert keys_of(fresh_raw, ns) == set(original) | ours
        assert {key: fresh_raw.type(key) for key in original} == original
        assert fresh_raw.smembers(f"{ns}:jobs") == {b"j1"}
        assert store._decode(fresh_raw.get(f"{ns}:job:j1"), "") == record
        stored = [store._decode(raw, "") for raw in fresh_raw.lrange(f"{ns}:job:j1:events", 0, -1)]
        assert stored == [summary_event.to_dict(), store.read_events("j1")[1]]
        assert stored[0]["payload"]["type"] == "init" and stored[0]["seq"] == 1
        assert fresh_raw.smembers(f"{ns}:job:j1:agents") == {b"a"}
        assert store._decode(fresh_raw.get(f"{ns}:job:j1:agent:a"), "") == {
            "agent_id": "a",
            "processed_messages": 1,
        }
        # delete_job leaves nothing of the job behind (the job counter is not the job's).
        store.write_batch(WriteBatch(messages={"j1": [("a", 1, {"m": 1})]}, blobs={"j1": {"k": 1}}))
        assert store.delete_job("j1")
        assert keys_of(fresh_raw, ns) == {f"{ns}:jobs:created"}


def test_custom_namespace_prefixes_every_key(make_redis_store: MakeStore, raw_redis: redis.Redis) -> None:
    store = make_redis_store(namespace="custom_ns_test")
    try:
        store.create_job({"job_id": "j1", "status": "pending"})
        store.write_batch(WriteBatch(events={"j1": events("j1", [1])}, agents={"j1": [{"agent_id": "a"}]}))
        keys = keys_of(raw_redis, "custom_ns_test")
        assert {"custom_ns_test:jobs", "custom_ns_test:job:j1", "custom_ns_test:job:j1:events"} <= keys
        assert "custom_ns_test:job:j1:agent:a" in keys
        assert Keys("custom_ns_test").channel("j1") == "custom_ns_test:channel:events:j1"
        assert not raw_redis.exists("mirror_neuron:job:j1")
    finally:
        store.delete_job("j1")
        raw_redis.delete("custom_ns_test:jobs:created")


def test_namespaces_do_not_see_each_other(make_redis_store: MakeStore) -> None:
    one, two = make_redis_store(namespace="ns_one_test"), make_redis_store(namespace="ns_two_test")
    try:
        one.create_job({"job_id": "j1", "status": "pending"})
        assert two.get_job("j1") is None and two.list_jobs() == []
        two.create_job({"job_id": "j1", "status": "running"})  # no clash
        assert one.get_job("j1") == {"job_id": "j1", "status": "pending"}
    finally:
        for store in (one, two):
            store.delete_job("j1")


# -- events: pub/sub, replay, retention -------------------------------------------------------


def test_every_stored_event_is_published_once(store: RedisStore, raw_redis: redis.Redis) -> None:
    pubsub = raw_redis.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(store.keys.channel("j1"))
        assert pubsub.get_message(timeout=1.0) is None  # the subscription is in place
        batch = events("j1", [1, 2, 3], agent_id="a", payload={"n": 1})
        store.write_batch(WriteBatch(events={"j1": batch}))
        store.write_batch(WriteBatch(events={"j1": [*batch, *events("j1", [4])]}))  # replay + one new
        received = []

        def four_received() -> bool:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                received.append(store._decode(message["data"], ""))
            return len(received) >= 4

        eventually(four_received, what="four published events", interval=0)
        assert received == [e.to_dict() for e in [*batch, *events("j1", [4])]]
        assert pubsub.get_message(timeout=0.2) is None
    finally:
        pubsub.close()


def test_replayed_events_are_ignored_and_the_first_write_kept(store: RedisStore) -> None:
    store.write_batch(
        WriteBatch(events={"j1": [Event(1, "first", "j1", 1.0), Event(2, "second", "j1", 1.0)]})
    )
    store.write_batch(
        WriteBatch(
            events={
                "j1": [Event(2, "again", "j1", 2.0), Event(1, "again", "j1", 2.0), Event(3, "new", "j1", 3.0)]
            }
        )
    )
    # Within one batch, too: equal seqs keep the first, and order is by seq.
    store.write_batch(
        WriteBatch(
            events={
                "j1": [Event(5, "five", "j1", 5.0), Event(4, "four", "j1", 4.0), Event(5, "dup", "j1", 5.0)]
            }
        )
    )
    assert [(e["seq"], e["type"]) for e in store.read_events("j1")] == [
        (1, "first"),
        (2, "second"),
        (3, "new"),
        (4, "four"),
        (5, "five"),
    ]
    assert store.count_events("j1") == 5


def test_replaying_a_whole_batch_changes_nothing(store: RedisStore) -> None:
    batch = WriteBatch(
        jobs=[{"job_id": "j1", "status": "running", "updated_at": "2024-01-01T00:00:00.000Z"}],
        events={"j1": events("j1", range(1, 6))},
        agents={"j1": [{"agent_id": "a", "processed_messages": 5}]},
        messages={"j1": [("a", 1, {"n": 1})]},
        blobs={"j1": {"manifest": {"graph_id": "g"}}},
    )
    store.write_batch(batch)
    before = (store.list_jobs(), store.read_events("j1"), store.get_agents("j1"), store.read_mailboxes("j1"))
    store.write_batch(batch)
    assert (
        store.list_jobs(),
        store.read_events("j1"),
        store.get_agents("j1"),
        store.read_mailboxes("j1"),
    ) == before


def test_retention_keeps_the_newest_events_and_reads_stay_right_by_seq(
    make_redis_store: MakeStore, raw_redis: redis.Redis
) -> None:
    store = make_redis_store(event_retention=5)
    for first in range(1, 13, 4):
        store.write_batch(WriteBatch(events={"j1": events("j1", range(first, first + 4))}))
    assert raw_redis.llen(store.keys.events("j1")) == store.count_events("j1") == 5
    assert seqs(store.read_events("j1")) == [8, 9, 10, 11, 12]
    assert seqs(store.read_events("j1", after=3, limit=2)) == [8, 9]
    assert seqs(store.read_events("j1", after=9)) == [10, 11, 12]
    assert seqs(store.read_events("j1", after=10, limit=1)) == [11]
    assert store.read_events("j1", after=12) == []
    # The high-water mark outlives trimming: old seqs replayed are still ignored.
    store.write_batch(WriteBatch(events={"j1": events("j1", range(1, 14))}))
    assert seqs(store.read_events("j1")) == [9, 10, 11, 12, 13]


def test_reads_by_seq_are_right_when_seqs_have_gaps(make_redis_store: MakeStore) -> None:
    written = [1, 2, 5, 7, 8, 10, 11, 20]
    for retention in (None, 5):
        store = make_redis_store(event_retention=retention)
        store.write_batch(WriteBatch(events={"j1": events("j1", written[:3])}))
        store.write_batch(WriteBatch(events={"j1": events("j1", written[3:])}))
        kept = written if retention is None else written[-retention:]
        for after in range(0, 22):
            for limit in (None, 1, 2, 3):
                expected = [s for s in kept if s > after][:limit]
                assert seqs(store.read_events("j1", after=after, limit=limit)) == expected, (after, limit)
        store.delete_job("j1")


def test_events_keep_their_shape_with_summaries_and_odd_extras(store: RedisStore) -> None:
    odd = [
        Event(1, "agent_message_received", "j1", 2.5, "a", SUMMARY),
        Event(2, "custom", "j1", 2.5, "a", {"text": 'ends with ,"seq":7}'}, {"seq": 99, "note": "x"}),
        Event(3, "custom", "j1", 2.5, None, ["a", {"b": None}], {"z": {"seq": 1}}),
    ]
    store.write_batch(WriteBatch(events={"j1": odd}))
    assert store.read_events("j1") == [e.to_dict() for e in odd]
    assert seqs(store.read_events("j1", after=1)) == [2, 3]
    assert seqs(store.read_events("j1", after=2)) == [3]


def test_ten_thousand_events_in_one_batch(store: RedisStore) -> None:
    """All of one big batch is stored, in order (its speed is measured by bench/bench_store_batch.py)."""
    count = 10_000
    now = time.time()
    batch = [Event(seq, "agent_message_received", "j1", now, "a", SUMMARY) for seq in range(1, count + 1)]
    store.write_batch(WriteBatch(events={"j1": batch}))
    assert store.count_events("j1") == count
    assert seqs(store.read_events("j1")) == list(range(1, count + 1))
    assert seqs(store.read_events("j1", after=count - 3)) == [count - 2, count - 1, count]
    assert store.read_events("j1", after=4999, limit=1) == [batch[4999].to_dict()]
    assert store.read_events("j1", after=count - 1) == [batch[-1].to_dict()]


# -- job records ------------------------------------------------------------------------------


def test_terminal_guard_holds_under_concurrent_writers(make_redis_store: MakeStore) -> None:
    """Writers on separate connections race running records against one terminal record."""
    stores = [make_redis_store() for _ in range(3)]
    stores[0].create_job({"job_id": "j1", "status": "pending"})
    final = {"job_id": "j1", "status": "completed", "result": {"output": 1}}
    stop, errors = threading.Event(), []
    writes = [0] * (len(stores) - 1)  # per writer, how many running records it wrote

    def hammer(i: int, store: RedisStore) -> None:
        try:
            while not stop.is_set():
                writes[i] += 1
                record = {"job_id": "j1", "status": "running", "n": i * 1_000_000 + writes[i]}
                store.write_batch(WriteBatch(jobs=[record]))
        except BaseException as exc:
            errors.append(exc)

    def each_wrote(at_least: list[int]) -> bool:
        return errors != [] or all(n >= least for n, least in zip(writes, at_least))

    threads = [threading.Thread(target=hammer, args=(i, s)) for i, s in enumerate(stores[1:])]
    for thread in threads:
        thread.start()
    eventually(lambda: each_wrote([20] * len(writes)), what="every writer racing")
    stores[0].write_batch(WriteBatch(jobs=[final]))
    after = [n + 20 for n in writes]
    eventually(lambda: each_wrote(after), what="every writer trying again after the terminal record")
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].get_job("j1") == final
    assert stores[0].list_jobs(include_terminal=False) == []


def test_terminal_record_written_by_another_tool_is_respected(
    store: RedisStore, raw_redis: redis.Redis
) -> None:
    raw_redis.set(store.keys.job("j1"), b'{"job_id":"j1","status":"failed","result":{"error":"x"}}')
    store.write_batch(WriteBatch(jobs=[{"job_id": "j1", "status": "running"}]))
    assert store.get_job("j1") == {"job_id": "j1", "status": "failed", "result": {"error": "x"}}


def test_list_jobs_index_follows_status_changes(store: RedisStore) -> None:
    store.create_job({"job_id": "a", "status": "pending", "updated_at": "2024-01-01"})
    store.create_job({"job_id": "b", "status": "running", "updated_at": "2024-01-02"})
    store.write_batch(WriteBatch(jobs=[{"job_id": "a", "status": "completed", "updated_at": "2024-01-03"}]))
    assert [j["job_id"] for j in store.list_jobs()] == ["a", "b"]
    assert [j["job_id"] for j in store.list_jobs(include_terminal=False)] == ["b"]
    store.delete_job("b")
    assert [j["job_id"] for j in store.list_jobs()] == ["a"]
    assert store.list_jobs(include_terminal=False) == []


def test_create_job_retried_after_a_lost_reply_is_not_a_duplicate(store: RedisStore) -> None:
    record = {"job_id": "j1", "status": "pending"}
    script = store._scripts["create_job"]
    calls = []

    def flaky_first_reply(*args: Any, **kwargs: Any) -> Any:
        result = script(*args, **kwargs)
        calls.append(result)
        if len(calls) == 1:  # the create happened, but the reply never arrived
            raise redis.exceptions.ConnectionError("connection reset")
        return result

    store._scripts["create_job"] = flaky_first_reply  # type: ignore[assignment]
    store.create_job(record)
    assert len(calls) == 2 and store.get_job("j1") == record
    with pytest.raises(StoreError, match="j1 already exists"):
        store.create_job({"job_id": "j1", "status": "running"})


# -- all or nothing ---------------------------------------------------------------------------


def test_a_failing_batch_writes_nothing(store: RedisStore, raw_redis: redis.Redis) -> None:
    store.write_batch(
        WriteBatch(jobs=[{"job_id": "j1", "status": "running"}], events={"j1": events("j1", [1])})
    )
    raw_redis.set(store.keys.agents("j2"), "not a set")  # the last section of the batch will fail
    bad = WriteBatch(
        jobs=[{"job_id": "j1", "status": "completed"}, {"job_id": "j2", "status": "running"}],
        events={"j1": events("j1", [2, 3])},
        agents={"j2": [{"agent_id": "a"}]},
    )
    with pytest.raises(StoreError, match=r"agents holds a string, not a set"):
        store.write_batch(bad)
    assert store.get_job("j1") == {"job_id": "j1", "status": "running"}
    assert store.get_job("j2") is None
    assert seqs(store.read_events("j1")) == [1]
    raw_redis.delete(store.keys.agents("j2"))
    store.write_batch(bad)  # the store is still usable
    assert store.get_job("j1") == {"job_id": "j1", "status": "completed"}


def test_bad_values_give_store_error_and_write_nothing(store: RedisStore) -> None:
    with pytest.raises(StoreError, match="JSON"):
        store.write_batch(
            WriteBatch(jobs=[{"job_id": "j1"}], events={"j1": [Event(1, "t", "j1", 1.0, payload=object())]})
        )
    with pytest.raises(StoreError, match="JSON"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1", "bad": object()}]))
    with pytest.raises(StoreError, match="job_id"):
        store.create_job({"status": "pending"})
    with pytest.raises(StoreError, match="agent_id"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1"}], agents={"j1": [{"n": 1}]}))
    with pytest.raises(StoreError, match="seq 0"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1"}], events={"j1": [Event(0, "t", "j1", 1.0)]}))
    assert store.get_job("j1") is None and store.count_events("j1") == 0


def test_a_stored_value_that_is_not_json_gives_store_error(store: RedisStore, raw_redis: redis.Redis) -> None:
    raw_redis.set(store.keys.job("j1"), b"\x00garbage")
    with pytest.raises(StoreError, match="JSON"):
        store.get_job("j1")
    with pytest.raises(StoreError, match="does not hold a JSON job record"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1", "status": "running"}]))
    raw_redis.delete(store.keys.job("j1"))


# -- connections ------------------------------------------------------------------------------


def test_store_survives_a_redis_restart(fresh_redis_server: RedisServer, backoff: _BackoffSpy) -> None:
    with RedisStore(fresh_redis_server.url, namespace="restart") as store:
        store.write_batch(WriteBatch(events={"j1": events("j1", [1, 2])}))
        # Killed and started again at once: the pooled connection is dead, the script cache empty.
        fresh_redis_server.restart()
        store.write_batch(WriteBatch(events={"j1": events("j1", [1, 2])}))
        assert seqs(store.read_events("j1")) == [1, 2]  # nothing was saved: the data is new
        # Killed, and back only after a while: the call waits for it (backoff), then succeeds.
        backoff.sleeps.clear()
        fresh_redis_server.kill()
        restarter = threading.Timer(0.4, fresh_redis_server.start)
        restarter.start()
        try:
            store.create_job({"job_id": "j2", "status": "pending"})
        finally:
            restarter.join()
        assert backoff.sleeps  # it found the server gone and waited for it
        assert store.get_job("j2") == {"job_id": "j2", "status": "pending"}


def test_unreachable_redis_gives_up_within_retry_for_with_the_password_hidden(backoff: _BackoffSpy) -> None:
    url = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    with pytest.raises(
        StoreError, match=r"Redis at redis://\*\*\*@127\.0\.0\.1:\d+/0 is unreachable"
    ) as caught:
        RedisStore(url, retry_for=0.3)
    assert backoff.sleeps and sum(backoff.sleeps) <= 0.3  # retried, never waiting past retry_for
    assert f"gave up after {len(backoff.sleeps) + 1} attempts" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_store_that_loses_its_server_gives_store_error_after_retrying(
    fresh_redis_server: RedisServer,
) -> None:
    with RedisStore(fresh_redis_server.url, retry_for=0.3) as store:
        fresh_redis_server.kill()
        with pytest.raises(StoreError, match="is unreachable: reading job j1 failed"):
            store.get_job("j1")


def test_wrong_password_is_not_retried_and_not_shown(backoff: _BackoffSpy) -> None:
    with RedisServer(password="right-pw") as server:
        with pytest.raises(StoreError, match="authentication failed") as caught:
            RedisStore(f"redis://:wrong-pw@127.0.0.1:{server.port}/0")
        assert backoff.sleeps == []  # failed at the first attempt
        assert "wrong-pw" not in str(caught.value) and "right-pw" not in str(caught.value)
        with RedisStore(server.url) as store:  # the right password works
            assert store.get_job("j1") is None
            assert "right-pw" not in store.url and "right-pw" not in repr(store)


def test_invalid_redis_url_gives_store_error() -> None:
    with pytest.raises(StoreError, match="invalid Redis URL"):
        RedisStore("redis://:pw@127.0.0.1:notaport/0")


def test_urls_are_redacted() -> None:
    assert redact_url("redis://:pw@host:6379/0") == "redis://***@host:6379/0"
    assert redact_url("rediss://user:pw@host/1") == "rediss://***@host/1"
    assert redact_url("unix:///run/redis.sock?db=0&password=pw") == "unix:///run/redis.sock?db=0&password=***"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"


def test_closed_store_raises_store_error(make_redis_store: MakeStore) -> None:
    store = make_redis_store()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_job("j1")
    with pytest.raises(StoreError, match="closed"):
        store.write_batch(WriteBatch(jobs=[{"job_id": "j1"}]))
    store.close()  # closing twice is harmless


def test_store_is_usable_from_many_threads(store: RedisStore) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(1, 21):
                store.write_batch(WriteBatch(events={f"j{n}": events(f"j{n}", [i])}))
                assert store.count_events(f"j{n}") == i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(store.count_events(f"j{n}") == 20 for n in range(8))
