"""Executor pools: exact errors, FIFO with head-of-line blocking, stats, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from mirror_neuron.config import Config
from mirror_neuron.execution import LeaseError, LeaseManager
from mirror_neuron.execution import pools as pools_module


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("pool", "slots", "message"),
    [
        ("memory-heavy", 1, 'unknown executor pool "memory-heavy"'),
        ("default", 3, "requested 3 executor slots but pool capacity is 2"),
        ("default", 0, "executor slots must be a positive integer"),
        ("default", -1, "executor slots must be a positive integer"),
        ("default", True, "executor slots must be a positive integer"),
        ("default", 1.5, "executor slots must be a positive integer"),
    ],
)
async def test_impossible_requests_fail_with_the_original_messages(
    pool: str, slots: object, message: str
) -> None:
    leases = LeaseManager({"default": 2})
    with pytest.raises(LeaseError) as info:
        await leases.acquire(pool, slots)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_capacities_come_from_config() -> None:
    leases = LeaseManager.from_config(
        Config(executor_max_concurrency=3, pool_capacities={"gpu": 1, "default": 5})
    )
    assert {name: s["capacity"] for name, s in leases.stats().items()} == {"default": 5, "gpu": 1}
    assert LeaseManager.from_config(Config()).stats()["default"]["capacity"] == 4


async def test_lease_shape_and_release() -> None:
    leases = LeaseManager({"default": 2})
    lease = await leases.acquire("default", 2, {"job_id": "j", "agent_id": "a", "node": "n"})
    doc = lease.to_dict()
    assert set(doc) == {
        "lease_id",
        "pool",
        "slots",
        "queue_wait_ms",
        "requested_at_ms",
        "acquired_at_ms",
        "metadata",
    }
    assert doc["metadata"] == {"job_id": "j", "agent_id": "a", "node": "n"}
    assert doc["acquired_at_ms"] >= doc["requested_at_ms"]
    assert leases.stats()["default"] == {
        "capacity": 2,
        "in_use": 2,
        "available": 0,
        "queued": 0,
        "active": 1,
        "jobs": 1,
    }
    leases.release(lease)
    leases.release(lease)  # idempotent
    assert leases.stats()["default"] == {
        "capacity": 2,
        "in_use": 0,
        "available": 2,
        "queued": 0,
        "active": 0,
        "jobs": 0,
    }


async def test_waiters_are_served_in_fifo_order_with_head_of_line_blocking() -> None:
    leases = LeaseManager({"default": 3})
    held = await leases.acquire("default", 2)
    order: list[str] = []

    async def want(name: str, slots: int) -> None:
        lease = await leases.acquire("default", slots)
        order.append(name)
        await asyncio.sleep(0.01)
        leases.release(lease)

    big = asyncio.create_task(want("big", 3))
    await settle()
    small = asyncio.create_task(want("small", 1))  # would fit now, but must wait behind "big"
    await settle()
    assert order == []
    assert leases.stats()["default"]["queued"] == 2
    leases.release(held)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]


class Clock:
    """Stands in for the ``time`` module of the pools: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


async def test_queue_wait_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(pools_module, "time", clock)
    leases = LeaseManager({"default": 1})
    held = await leases.acquire()
    assert held.queue_wait_ms == 0
    waiter = asyncio.create_task(leases.acquire())
    await settle()  # queued
    clock.now += 0.25
    leases.release(held)
    lease = await waiter
    assert lease.queue_wait_ms == 250
    assert lease.acquired_at_ms == lease.requested_at_ms + 250 == int(1_700_000_000.25 * 1000)


async def test_cancelled_waiter_leaves_the_queue_and_unblocks_the_next() -> None:
    leases = LeaseManager({"default": 2})
    held = await leases.acquire("default", 1)
    blocked = asyncio.create_task(leases.acquire("default", 2))
    await settle()
    behind = asyncio.create_task(leases.acquire("default", 1))
    await settle()
    assert leases.stats()["default"]["queued"] == 2
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    lease = await asyncio.wait_for(behind, 1)
    assert leases.stats()["default"] == {
        "capacity": 2,
        "in_use": 2,
        "available": 0,
        "queued": 0,
        "active": 2,
        "jobs": 1,
    }
    leases.release(lease)
    leases.release(held)
    assert leases.stats()["default"]["in_use"] == 0


async def test_waiter_cancelled_right_after_being_granted_gives_the_slots_back() -> None:
    leases = LeaseManager({"default": 1})
    held = await leases.acquire()
    waiter = asyncio.create_task(leases.acquire())
    await settle()
    leases.release(held)  # grants the waiter's future...
    waiter.cancel()  # ...but the task is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert leases.stats()["default"] == {
        "capacity": 1,
        "in_use": 0,
        "available": 1,
        "queued": 0,
        "active": 0,
        "jobs": 0,
    }
