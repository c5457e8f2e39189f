"""Pools shared fairly by jobs: round-robin grants, no starvation, the per-job cap, cancellation.

The unit tests are pure asyncio: grants happen synchronously inside ``release``/``acquire``,
so each test orders things with tasks and ``settle()`` and never asserts on time. The last
test runs two real jobs in one runtime.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from builders import aggregator, manifest
from mirror_neuron import Config, Runtime
from mirror_neuron.execution import Lease, LeaseManager
from waiting import eventually_async


async def settle() -> None:
    """Let every ready task run (granted waiters resume and record themselves)."""
    for _ in range(10):
        await asyncio.sleep(0)


class Requests:
    """Lease requests made from tasks, named ``<job><n>``; records the order they are granted in."""

    def __init__(self, leases: LeaseManager) -> None:
        self.leases = leases
        self.order: list[str] = []
        self.held: dict[str, Lease] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def want(self, name: str, job: str, slots: int = 1) -> None:
        """Queue a request (in a task) and let it reach the pool."""
        self.tasks[name] = asyncio.create_task(self._acquire(name, job, slots))
        await settle()

    async def _acquire(self, name: str, job: str, slots: int) -> None:
        lease = await self.leases.acquire("default", slots, {"job_id": job}, owner=job)
        self.order.append(name)
        self.held[name] = lease

    async def release(self, name: str) -> None:
        self.leases.release(self.held.pop(name))
        await settle()

    def holding(self, job: str) -> int:
        """Slots ``job`` holds through leases granted to these requests."""
        return sum(lease.slots for lease in self.held.values() if lease.owner == job)


def pool(leases: LeaseManager) -> dict[str, int]:
    return leases.stats()["default"]


async def test_a_new_job_is_served_when_the_current_lease_ends_not_after_the_backlog() -> None:
    leases = LeaseManager({"default": 4})
    r = Requests(leases)
    await r.want("a0", "A", 4)  # the whole pool, like the hostile probe
    for n in (1, 2, 3):
        await r.want(f"a{n}", "A", 4)
    await r.want("b1", "B", 1)
    assert r.order == ["a0"] and pool(leases)["queued"] == 4
    await r.release("a0")
    assert r.order == ["a0", "b1"]  # before A's older backlog
    assert pool(leases)["in_use"] == 1  # a1 is reserved, waiting for b1's slot
    await r.release("b1")
    assert r.order == ["a0", "b1", "a1"]
    for n in (1, 2):
        await r.release(f"a{n}")
    assert r.order == ["a0", "b1", "a1", "a2", "a3"]


async def test_a_small_backlog_from_one_job_does_not_delay_another_job_either() -> None:
    leases = LeaseManager({"default": 2})
    r = Requests(leases)
    for n in range(4):
        await r.want(f"a{n}", "A")
    await r.want("b0", "B")
    assert r.order == ["a0", "a1"]
    await r.release("a0")
    assert r.order == ["a0", "a1", "b0"]  # B holds nothing, A holds one: B goes first


async def test_three_jobs_are_served_round_robin() -> None:
    leases = LeaseManager({"default": 1})
    r = Requests(leases)
    await r.want("z", "Z")
    for job in "ABC":  # worst case for FIFO: every job's whole backlog in one block
        for n in range(3):
            await r.want(f"{job}{n}", job)
    await r.release("z")
    while len(r.order) < 10:
        await r.release(r.order[-1])
    assert r.order[1:] == ["A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2"]


async def test_jobs_that_come_and_go_between_runs_do_not_starve_a_waiting_backlog() -> None:
    leases = LeaseManager({"default": 1})
    r = Requests(leases)
    await r.want("a0", "A")
    await r.want("b0", "B")
    await r.want("c0", "C")
    await r.want("c1", "C")
    runs = {"A": 0, "B": 0}
    while len(r.order) < 6:
        name = r.order[-1]
        await r.release(name)
        job = name[0].upper()
        if job in runs:  # like an executor node: the next request only after its run ends
            runs[job] += 1
            await r.want(f"{name[0]}{runs[job]}", job)
    assert r.order == ["a0", "b0", "c0", "a1", "b1", "c1"]


async def test_a_big_request_is_not_starved_by_a_stream_of_small_ones_from_other_jobs() -> None:
    leases = LeaseManager({"default": 4})
    r = Requests(leases)
    for name, job in (("g0", "G"), ("s1", "S"), ("s2", "S"), ("t1", "T")):
        await r.want(name, job)
    await r.want("big", "G", 3)
    await r.want("s3", "S")
    await r.release("s1")  # G and S hold one slot each; G was served longer ago: "big" is chosen
    assert r.order == ["g0", "s1", "s2", "t1"] and pool(leases)["available"] == 1
    small = ["s3"]
    for held, (name, job) in (("t1", ("u1", "U")), ("s2", ("t2", "T"))):
        await r.want(name, job)  # U holds nothing, so it is fairer than G, and a slot is free...
        small.append(name)
        assert r.order[-1] != name  # ...but the freed slots are held for "big": no backfilling
        await r.release(held)
    assert r.order[-1] == "big" and pool(leases)["in_use"] == 4
    assert not set(r.order) & set(small)
    await r.release("big")
    assert sorted(r.order[5:]) == ["s3", "t2", "u1"]


async def test_the_per_job_cap_holds_while_two_jobs_wait_and_not_for_a_job_alone() -> None:
    leases = LeaseManager({"default": 4}, max_job_share=0.5)
    r = Requests(leases)
    for n in range(4):
        await r.want(f"a{n}", "A")
    assert r.holding("A") == 4 and pool(leases)["queued"] == 0  # alone: the whole pool
    for n in range(4, 7):
        await r.want(f"a{n}", "A")
    for n in range(3):
        await r.want(f"b{n}", "B")
    for held in ("a0", "a1", "a2", "a3", "b0"):
        await r.release(held)
        granted = r.order[-1]
        assert r.holding(granted[0].upper()) <= 2  # both wait: no grant takes a job over half
    assert r.order[4:] == ["b0", "b1", "a4", "a5", "b2"]
    assert (r.holding("A"), r.holding("B")) == (2, 2)
    await r.release("b1")  # B waits for nothing now: A may take more than its share
    assert r.order[-1] == "a6" and r.holding("A") == 3
    await r.want("a7", "A")
    await r.release("b2")
    assert r.order[-1] == "a7" and r.holding("A") == 4


async def test_a_request_over_its_jobs_cap_waits_while_another_job_waits() -> None:
    leases = LeaseManager({"default": 4}, max_job_share=0.5)
    r = Requests(leases)
    await r.want("x", "X", 4)  # alone, so granted beyond the cap
    await r.want("a", "A", 4)  # the oldest request, but over A's cap of 2
    await r.want("b0", "B")
    await r.want("b1", "B")
    await r.release("x")
    assert r.order == ["x", "b0", "b1"]  # without the cap "a" would have taken the pool first
    await r.release("b0")
    await r.release("b1")
    assert r.order[-1] == "a"  # nobody else waits: work-conserving


async def test_requests_over_the_cap_of_idle_jobs_cannot_deadlock() -> None:
    leases = LeaseManager({"default": 4}, max_job_share=0.5)
    r = Requests(leases)
    await r.want("x", "X", 4)
    await r.want("a", "A", 3)
    await r.want("b", "B", 3)
    await r.release("x")  # both over their cap, both waiting, nobody holds: one must go
    assert r.order == ["x", "a"]
    await r.release("a")
    assert r.order == ["x", "a", "b"]


async def test_cancelling_a_waiter_in_the_middle_of_the_fair_queue() -> None:
    leases = LeaseManager({"default": 1})
    r = Requests(leases)
    await r.want("z", "Z")
    await r.want("a1", "A")
    await r.want("b1", "B")
    await r.want("b2", "B")
    await r.want("c1", "C")
    assert pool(leases)["queued"] == 4 and pool(leases)["jobs"] == 4
    r.tasks["b1"].cancel()
    await settle()
    assert r.tasks["b1"].cancelled()
    assert pool(leases)["queued"] == 3 and pool(leases)["jobs"] == 4
    await r.release("z")
    while len(r.order) < 4:
        await r.release(r.order[-1])
    assert r.order == ["z", "a1", "b2", "c1"]
    await r.release("c1")
    assert pool(leases) == {"capacity": 1, "in_use": 0, "available": 1, "queued": 0, "active": 0, "jobs": 0}


async def test_cancelling_the_reserved_request_lets_other_jobs_use_the_free_slots() -> None:
    leases = LeaseManager({"default": 4})
    r = Requests(leases)
    for n in range(3):
        await r.want(f"x{n}", "X")
    await r.want("big", "G", 4)  # reserved: the free slot is held for it
    await r.want("a", "A")
    await r.want("b", "B")
    assert r.order == ["x0", "x1", "x2"]
    r.tasks["big"].cancel()
    await settle()
    assert r.order == ["x0", "x1", "x2", "a"]  # one free slot, the oldest request
    await r.release("x0")
    assert r.order[-1] == "b" and pool(leases)["queued"] == 0


async def test_a_grant_lost_to_cancellation_goes_to_the_next_job() -> None:
    leases = LeaseManager({"default": 1})
    r = Requests(leases)
    await r.want("a", "A")
    await r.want("b", "B")
    await r.want("c", "C")
    leases.release(r.held.pop("a"))  # grants "b"...
    r.tasks["b"].cancel()  # ...whose task is cancelled before it resumes
    await settle()
    assert r.order == ["a", "c"] and pool(leases)["in_use"] == 1 and pool(leases)["jobs"] == 1


async def test_stats_count_jobs_holding_or_waiting() -> None:
    leases = LeaseManager({"default": 2, "gpu": 1})
    r = Requests(leases)
    assert pool(leases) == {"capacity": 2, "in_use": 0, "available": 2, "queued": 0, "active": 0, "jobs": 0}
    await r.want("a0", "A", 2)
    await r.want("a1", "A")
    await r.want("b0", "B")
    await r.want("c0", "C")
    assert pool(leases) == {"capacity": 2, "in_use": 2, "available": 0, "queued": 3, "active": 1, "jobs": 3}
    assert leases.stats()["gpu"]["jobs"] == 0 and leases.statistics() == leases.stats()
    await r.release("a0")  # B and C (holding nothing, never served) before A's second request
    assert r.order == ["a0", "b0", "c0"]
    assert pool(leases) == {"capacity": 2, "in_use": 2, "available": 0, "queued": 1, "active": 2, "jobs": 3}
    for name in ("b0", "c0", "a1"):
        await r.release(name)
    assert pool(leases)["jobs"] == 0


async def test_without_an_owner_the_metadata_job_id_is_the_job() -> None:
    leases = LeaseManager({"default": 1})
    held = await leases.acquire("default", 1, {"job_id": "A"})
    order: list[str] = []

    async def want(name: str, job: str) -> None:
        leases.release(await leases.acquire("default", 1, {"job_id": job}))
        order.append(name)

    tasks = [asyncio.create_task(want(n, j)) for n, j in (("a1", "A"), ("a2", "A"), ("b1", "B"))]
    await settle()
    assert held.owner == "A" and leases.stats()["default"]["jobs"] == 2
    leases.release(held)
    await asyncio.gather(*tasks)
    assert order[0] == "b1"


def test_the_share_comes_from_config_and_is_validated() -> None:
    assert LeaseManager.from_config(Config(pool_job_share=0.5)).max_job_share == 0.5
    assert LeaseManager.from_config(Config()).max_job_share == 1.0
    legacy = SimpleNamespace(pools=lambda: {"default": 4})  # a config without the field
    assert LeaseManager.from_config(legacy).max_job_share == 1.0  # type: ignore[arg-type]
    for bad in (0, -0.5, 1.5, True):
        with pytest.raises(ValueError, match="max_job_share"):
            LeaseManager({"default": 4}, max_job_share=bad)


# -- end to end: two jobs in one runtime ------------------------------------------------------

RUN = """
import os, sys, time
log, gate, name = sys.argv[1:4]
with open(log, "a") as f:
    f.write(name + "\\n")
while not os.path.exists(gate):  # the test opens the gate once B's request is queued
    time.sleep(0.01)
"""


def executor(node_id: str, slots: int, log: Path, gate: Path, name: str) -> dict[str, Any]:
    command = [sys.executable, "-c", RUN, str(log), str(gate), name]
    config = {"command": command, "runner": "host_local", "pool_slots": slots}
    return {"node_id": node_id, "agent_type": "executor", "config": config}


async def test_another_jobs_run_is_leased_before_a_whole_pool_jobs_backlog(tmp_path: Path) -> None:
    log, gate = tmp_path / "runs.log", tmp_path / "gate"
    workers = [executor(f"w{n}", 4, log, gate, f"A{n}") for n in range(3)]  # 4 slots: the whole pool
    job_a = manifest(
        [*workers, aggregator("sink", complete_after=3)],
        [(f"w{n}", "sink", "executor_result") for n in range(3)],
        entrypoints=[f"w{n}" for n in range(3)],
    )
    job_b = manifest(
        [executor("w", 1, log, gate, "B"), aggregator("sink", complete_on_message=True)],
        [("w", "sink", "executor_result")],
    )
    async with Runtime(Config(store_url="memory://")) as rt:
        stats = rt.services["leases"].stats
        a = await rt.submit(job_a)
        await eventually_async(
            lambda: stats()["default"]["queued"] == 2 and log.exists(), what="A's backlog to be queued"
        )
        b = await rt.submit(job_b)
        await eventually_async(lambda: stats()["default"]["queued"] == 3, what="B's request to be queued")
        gate.touch()
        done_a, done_b = await rt.wait(a, timeout=60), await rt.wait(b, timeout=60)
        assert done_a["status"] == done_b["status"] == "completed"
        runs = log.read_text().split()
        assert runs[1] == "B" and sorted(runs) == ["A0", "A1", "A2", "B"]  # after A's first run only
        acquired = {job: await lease_times(rt, job, done) for job, done in ((a, done_a), (b, done_b))}
    first_a, *backlog = sorted(acquired[a])
    assert len(backlog) == 2 and first_a <= acquired[b][0] <= min(backlog)


async def lease_times(rt: Runtime, job_id: str, done: dict[str, Any]) -> list[int]:
    """``acquired_at_ms`` of the leases named by the job's ``executor_lease_acquired`` events."""
    events = await rt.events(job_id)
    ids = [e["payload"]["lease_id"] for e in events if e["type"] == "executor_lease_acquired"]
    leases = [m["sandbox"]["lease"] for m in done["result"]["output"]["messages"]]
    times = {lease["lease_id"]: lease["acquired_at_ms"] for lease in leases}
    return [times[i] for i in ids]
