"""Hostile values and failing stores: one job's bad data fails that job only; a dead store is loud.

The attacks: a 300-level message body (orjson, the stores' encoder, refuses nesting past
~254 levels), a value that reaches the writer anyway, and a store that takes no writes at
all. Before, any of these silently stopped all storage for every job, forever.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router
from mirror_neuron import Config, MessageError, Runtime
from mirror_neuron.errors import StoreError
from mirror_neuron.runtime import batches
from mirror_neuron.store import SQLiteStore
from mirror_neuron.store.base import WriteBatch
from redis_server import RedisServer, RedisServerMissing

#: Bounds every wait: a broken writer shows up as a timeout, never as a hang.
WAIT = 30.0


def nested(levels: int, marker: str = "deep") -> dict[str, Any]:
    """A value ``levels`` objects deep, with ``marker`` at the bottom."""
    value: dict[str, Any] = {"marker": marker}
    for _ in range(levels - 1):
        value = {"x": value}
    return value


def collect(n: int) -> dict[str, Any]:
    """entry router → sink aggregator completing after ``n`` messages (the first comes from the start)."""
    return manifest([router("entry"), aggregator("sink", complete_after=n)], [("entry", "sink", "init")])


class FlakySQLite(SQLiteStore):
    """A real SQLite store whose writes can be switched off, like a disk that stops taking them."""

    failing = False

    def write_batch(self, batch: WriteBatch) -> None:
        if self.failing:
            raise StoreError(f"SQLite store {self.path}: writing a batch failed: disk I/O error")
        super().write_batch(batch)


@pytest.fixture(params=["sqlite", "redis"])
def durable_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The stores that encode (and so can refuse) what they are given; Redis is a real server."""
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "store.db")
    from mirror_neuron.store.redis import RedisStore

    server = request.getfixturevalue("redis_server")
    return RedisStore(server.url, namespace=f"mn_res_{os.getpid()}_{tmp_path.name}")


@pytest.fixture
async def durable(durable_store: Any) -> AsyncIterator[Runtime]:
    async with Runtime(Config(store_url=durable_store.url, control=False), store=durable_store) as rt:
        yield rt


def stored_text(store: Any, job_id: str) -> str:
    """Everything stored for a job, as one JSON text (to look for what must not be there)."""
    parts = [store.get_job(job_id), store.read_events(job_id), store.get_agents(job_id)]
    return json.dumps([parts, store.read_mailboxes(job_id)], default=str)


def assert_fully_stored(store: Any, job_id: str, seq: int) -> None:
    """Every event up to ``seq`` is stored, densely, in order."""
    assert [e["seq"] for e in store.read_events(job_id)] == list(range(1, seq + 1))


# -- bounds at the entry -------------------------------------------------------------------


async def test_a_300_level_message_is_refused_and_storage_goes_on(runtime: Runtime) -> None:
    job_id = await runtime.submit(collect(3))
    other = await runtime.submit(collect(2))
    with pytest.raises(MessageError, match=r"message to agent sink of job .* more than 64 levels deep"):
        await runtime.control.send_message(job_id, "sink", {"body": nested(300, "refused")})
    await runtime.control.send_message(job_id, "sink", {"n": 1})
    await runtime.control.send_message(other, "sink", {"n": 1})
    await runtime.control.send_message(job_id, "sink", nested(64, "kept"))  # at the limit: accepted
    assert (await runtime.wait(job_id, WAIT))["status"] == "completed"
    assert (await runtime.wait(other, WAIT))["status"] == "completed"
    store = runtime.store
    assert store.get_job(job_id)["status"] == store.get_job(other)["status"] == "completed"
    assert "refused" not in stored_text(store, job_id) and "kept" in stored_text(store, job_id)
    assert_fully_stored(store, other, store.read_events(other)[-1]["seq"])
    assert runtime.health() == {"status": "ok"}


async def test_messages_too_big_or_not_json_are_refused_before_delivery(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(collect(2))
    with pytest.raises(MessageError, match="over the limit of 8388608 bytes"):
        await memory_runtime.control.send_message(job_id, "sink", {"blob": "x" * (8 * 1024 * 1024)})
    with pytest.raises(MessageError, match="cannot be encoded as JSON"):
        await memory_runtime.control.send_message(job_id, "sink", {"thing": object()})
    await memory_runtime.control.send_message(job_id, "sink", {"n": 1})
    record = await memory_runtime.wait(job_id, WAIT)
    assert sorted(map(str, record["result"]["output"]["messages"])) == ["{'n': 1}", "{}"]  # no refused one


# -- one bad job fails alone ----------------------------------------------------------------


async def test_an_unencodable_event_fails_only_its_job_while_another_completes(durable: Runtime) -> None:
    store = durable.store
    bad = await durable.submit(collect(3))
    good = await durable.submit(collect(3))
    bad_job, good_job = durable.jobs[bad], durable.jobs[good]
    bad_job.event("probe", "entry", {"emitted": nested(300)})  # got past every entry check
    await asyncio.gather(
        durable.control.send_message(good, "sink", {"n": 1}),
        durable.control.send_message(good, "sink", {"n": 2}),
    )
    failed = await durable.wait(bad, WAIT)
    assert (await durable.wait(good, WAIT))["status"] == "completed"

    assert failed["status"] == "failed"
    reason = failed["result"]["error"]
    assert "could not write this job's data" in reason and "cannot be encoded as JSON" in reason
    assert store.get_job(bad)["status"] == "failed"
    assert store.get_job(bad)["result"]["error"] == reason
    events = store.read_events(bad)
    assert_fully_stored(store, bad, bad_job.seq)  # dense: nothing is silently missing
    probe = next(e for e in events if e["type"] == "probe")
    assert "payload" not in probe and probe["not_stored"]  # kept, with why its payload is not
    assert events[-1]["type"] == "job_failed" and events[-1]["reason"] == reason

    assert store.get_job(good)["status"] == "completed"
    assert_fully_stored(store, good, good_job.seq)
    assert {a["agent_id"] for a in store.get_agents(good)} == {"entry", "sink"}
    assert durable.health() == {"status": "ok"}

    later = await durable.submit(collect(1))  # the writer goes on for everyone
    later_job = durable.jobs[later]
    assert (await durable.wait(later, WAIT))["status"] == "completed"
    assert store.get_job(later)["status"] == "completed"
    assert_fully_stored(store, later, later_job.seq)


async def test_a_job_that_ends_with_an_unencodable_result_is_failed_not_completed(durable: Runtime) -> None:
    job_id = await durable.submit(collect(5))
    job = durable.jobs[job_id]
    job.complete("sink", {"answer": nested(300)})
    record = await durable.wait(job_id, WAIT)
    assert record["status"] == "failed"  # what waiters see is what the store has
    assert "could not write this job's data" in record["result"]["error"]
    stored = durable.store.get_job(job_id)
    assert stored["status"] == "failed" and stored["result"] == record["result"]
    assert_fully_stored(durable.store, job_id, job.seq)


async def test_a_failed_send_is_not_acknowledged_for_a_job_whose_data_is_refused(durable: Runtime) -> None:
    job_id = await durable.submit(collect(5))
    durable.jobs[job_id].event("probe", None, {"emitted": nested(300)})
    with pytest.raises(StoreError, match="could not write this job's data"):
        await durable.control.send_message(job_id, "sink", {"n": 1})


# -- a store that takes no writes --------------------------------------------------------------


@pytest.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[Runtime]:
    store = FlakySQLite(tmp_path / "store.db")
    async with Runtime(Config(store_url=store.url, control=False), store=store) as rt:
        yield rt


async def test_a_store_that_takes_no_writes_degrades_the_runtime_until_it_recovers(flaky: Runtime) -> None:
    store = flaky.store
    assert isinstance(store, FlakySQLite)
    job_id = await flaky.submit(collect(5))
    job = flaky.jobs[job_id]
    await flaky.control.send_message(job_id, "sink", {"n": 1})
    store.failing = True
    with pytest.raises(StoreError, match="disk I/O error"):
        await flaky.control.send_message(job_id, "sink", {"n": 2})  # not acknowledged: it was not stored
    health = flaky.health()
    assert health["status"] == "degraded" and "disk I/O error" in health["reason"] and health["since"]
    failed = await asyncio.wait_for(asyncio.shield(job.done), WAIT)
    assert failed["status"] == "failed" and "the store failed" in failed["result"]["error"]
    assert store.get_job(job_id)["status"] == "running"  # the last commit, nothing more
    with pytest.raises(StoreError, match="takes no writes"):
        await flaky.submit(collect(1))

    store.failing = False
    await asyncio.wait_for(flaky.writer.healthy.wait(), WAIT)  # the writer retries on its own
    assert flaky.health() == {"status": "ok"}
    stored = store.get_job(job_id)
    assert stored["status"] == "failed" and stored["result"] == failed["result"]  # held back, now written
    assert_fully_stored(store, job_id, job.seq)
    again = await flaky.submit(collect(1))
    assert (await flaky.wait(again, WAIT))["status"] == "completed"
    assert store.get_job(again)["status"] == "completed"


async def test_cancel_is_not_acknowledged_while_the_store_takes_no_writes(flaky: Runtime) -> None:
    store = flaky.store
    assert isinstance(store, FlakySQLite)
    job_id = await flaky.submit(collect(5))
    await flaky.control.send_message(job_id, "sink", {"n": 1})  # stored: the job is running in the store
    store.failing = True
    with pytest.raises(StoreError):
        await flaky.control.cancel(job_id)
    assert store.get_job(job_id)["status"] == "running"  # a restart would recover it: the caller knows
    with pytest.raises(StoreError, match="takes no writes"):
        await flaky.control.pause(job_id)


@pytest.fixture
def redis_outage() -> Iterator[RedisServer]:
    """A Redis server of the test's own, that keeps its data when killed and restarted."""
    try:
        server = RedisServer(durable=True)
    except RedisServerMissing as exc:
        pytest.skip(str(exc))
    with server:
        yield server


async def test_a_redis_outage_degrades_the_runtime_and_it_recovers_when_redis_is_back(
    redis_outage: RedisServer,
) -> None:
    from mirror_neuron.store.redis import RedisStore

    store = RedisStore(redis_outage.url, namespace="outage", retry_for=0.2)
    async with Runtime(Config(store_url=store.url, control=False), store=store) as rt:
        job_id = await rt.submit(collect(5))
        job = rt.jobs[job_id]
        await rt.control.send_message(job_id, "sink", {"n": 1})
        redis_outage.kill()
        with pytest.raises(StoreError, match="unreachable"):
            await rt.control.send_message(job_id, "sink", {"n": 2})
        assert rt.health()["status"] == "degraded" and "unreachable" in rt.health()["reason"]
        await asyncio.wait_for(asyncio.shield(job.done), WAIT)
        redis_outage.start()
        await asyncio.wait_for(rt.writer.healthy.wait(), WAIT)
        assert rt.health() == {"status": "ok"}
        assert store.get_job(job_id)["status"] == "failed"
        assert_fully_stored(store, job_id, job.seq)


async def test_doctor_reports_a_degraded_runtime_and_fails(tmp_path: Path) -> None:
    store = FlakySQLite(tmp_path / "store.db")
    name = f"degraded-{os.getpid()}-{tmp_path.name}"
    async with Runtime(Config(store_url=store.url, node_name=name), store=store) as rt:
        job_id = await rt.submit(collect(5))
        store.failing = True
        with pytest.raises(StoreError):
            await rt.control.send_message(job_id, "sink", {"n": 1})
        env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mirror_neuron", "doctor", env=env, stdout=asyncio.subprocess.PIPE
        )  # a child process, while this loop goes on serving the runtime's control socket
        out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 1
        assert f"FAIL runtime {name}: degraded: " in out.decode() and "disk I/O error" in out.decode()
        store.failing = False


async def test_a_300_level_message_for_a_job_hosted_elsewhere_is_refused_before_it_is_sent(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    async with Runtime(Config(store_url=store.url), store=store) as host:
        job_id = await host.submit(collect(2))
        other = SQLiteStore(tmp_path / "store.db")
        async with Runtime(Config(store_url=other.url, control=False), store=other) as client:
            with pytest.raises(MessageError, match="more than 64 levels deep"):
                await client.control.send_message(job_id, "sink", {"body": nested(300)})  # was a TypeError
            await client.control.send_message(job_id, "sink", {"n": 1})  # through the host's control socket
        assert (await host.wait(job_id, WAIT))["status"] == "completed"
        assert host.health() == {"status": "ok"}


class LockedForOneJob(SQLiteStore):
    """A real SQLite store that refuses writes touching one job a few times, as a lock held by
    another process would: good data, refused for now."""

    locked_job: str | None = None
    refusals = 0

    def write_batch(self, batch: WriteBatch) -> None:
        touches = self.locked_job is not None and self.locked_job in batches.job_ids(batch)
        if touches and self.refusals > 0:
            self.refusals -= 1
            raise StoreError(f"SQLite store {self.path}: writing a batch failed: database is locked")
        super().write_batch(batch)


async def test_a_store_refusing_good_data_for_a_moment_fails_no_job(tmp_path: Path) -> None:
    store = LockedForOneJob(tmp_path / "store.db")
    async with Runtime(Config(store_url=store.url, control=False), store=store) as rt:
        locked = await rt.submit(collect(2))
        other = await rt.submit(collect(2))
        locked_job = rt.jobs[locked]
        store.locked_job, store.refusals = locked, 6  # more than one batch's retries
        await asyncio.gather(
            rt.control.send_message(other, "sink", {"n": 1}),
            rt.control.send_message(locked, "sink", {"n": 1}),
        )
        assert (await rt.wait(other, WAIT))["status"] == "completed"
        assert (await rt.wait(locked, WAIT))["status"] == "completed"  # held back and retried, not failed
        await asyncio.wait_for(rt.writer.healthy.wait(), WAIT)
        assert store.get_job(locked)["status"] == "completed" and store.refusals == 0
        assert_fully_stored(store, locked, locked_job.seq)
