"""Cluster nodes in one process over one SQLite file: fencing, failover policies, placement.

Each "node" is a :class:`Runtime` with its own name; a node "dies" by no longer renewing its
leases (its jobs sit still), and another node's :meth:`ClusterNode.sweep` is called by hand,
so nothing here waits for a timer but the lease expiry itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router
from mirror_neuron import Config, Runtime
from mirror_neuron.errors import ConfigError, JobStateError, NoEligibleNode, NotFound, StoreError
from mirror_neuron.runtime import ClusterNode, NodeSettings, Placer, check_join
from mirror_neuron.runtime.cluster import OWNER_DIED
from mirror_neuron.store import SQLiteStore, WriteBatch
from mirror_neuron.validation import manifest_from_data
from waiting import eventually_async

TTL = 0.3
VERSION = "0.1.0"


def waiting_job(policy: str | None = None) -> dict[str, Any]:
    """Stays running: its sink waits for a second message that only an operator sends."""
    policies = {"recovery_mode": policy} if policy else {}
    return manifest(
        [router("entry"), aggregator("sink", complete_after=2)],
        [("entry", "sink", "init")],
        initial_inputs={"entry": [{"n": 1}]},
        policies=policies,
    )


NodeFactory = Callable[..., Any]


@pytest.fixture
async def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[NodeFactory]:
    """Start named nodes on one SQLite file (``host`` is the machine it claims to run on)."""
    url = f"sqlite:///{tmp_path / 'cluster.db'}"
    started: list[ClusterNode] = []

    async def start(name: str, host: str = "box-a") -> ClusterNode:
        monkeypatch.setenv("MIRROR_NEURON_NODE_HOST", host)
        config = Config(
            store_url=url, node_name=name, lease_ttl=TTL, control=False, temp_dir=tmp_path / "tmp"
        )
        node = ClusterNode(Runtime(config), NodeSettings(sweep_interval=3600, heartbeat=3600), VERSION)
        await node.start()
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()
        await node.runtime.close()


async def _dies(node: ClusterNode, job_id: str) -> None:
    """The node stops renewing the job's lease (as if killed); wait until the lease expired."""
    rt = node.runtime
    assert rt.leases is not None
    rt.leases.held.pop(job_id)
    await eventually_async(
        lambda: job_id in rt.store.unowned_jobs(), what="the dead owner's lease expired", interval=0.02
    )


async def _orphaned(node: ClusterNode, policy: str | None) -> str:
    """A waiting job of ``policy`` on ``node``, stored, whose owner then dies."""
    job_id = await node.runtime.submit(waiting_job(policy))
    await node.runtime.writer.flush()
    await _dies(node, job_id)
    return job_id


async def _settled(node: ClusterNode, job_id: str) -> list[dict[str, str]]:
    return [d for d in await node.sweep() if d["job_id"] == job_id]


async def test_cluster_recover_is_recovered_by_another_node_that_fences_the_old_owner(
    nodes: NodeFactory,
) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await _orphaned(a, "cluster_recover")
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "recover"}]
    record = await b.runtime.inspect_job(job_id)
    assert (record["node"], record["lease_epoch"], record["status"]) == ("b", 2, "running")
    # The old owner wakes up and writes: refused, and it stops the job without a trace.
    stale = a.runtime.jobs[job_id]
    stale.event("late_write_from_the_deposed_owner")
    await a.runtime.writer.flush()
    assert stale.fenced and job_id not in a.runtime.jobs
    types = [e["type"] for e in await b.runtime.events(job_id)]
    assert "late_write_from_the_deposed_owner" not in types
    assert types.count("job_claimed") == 1 and "job_owner_lost" in types
    # The new owner finishes it: exactly one completion, dense events.
    await b.runtime.control.send_message(job_id, "sink", {"n": 2})
    done = await b.runtime.wait(job_id, 10)
    assert done["status"] == "completed" and done["result"]["output"]["count"] == 2
    events = await b.runtime.events(job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_local_restart_on_another_machine_fails_with_the_originals_reason(nodes: NodeFactory) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await _orphaned(a, None)
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "fail"}]
    record = await b.runtime.inspect_job(job_id)
    assert record["status"] == "failed" and record["result"]["error"] == OWNER_DIED
    types = [e["type"] for e in await b.runtime.events(job_id)]
    assert types[-3:] == ["job_owner_lost", "job_claimed", "job_failed"]
    assert b.runtime.store.get_lease(job_id) is None  # released: nothing holds an ended job


async def test_local_restart_on_the_same_machine_is_recovered(nodes: NodeFactory) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-a")
    job_id = await _orphaned(a, None)
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "recover"}]


async def test_manual_recover_is_suspended_for_an_operator_and_left_alone(nodes: NodeFactory) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await _orphaned(a, "manual_recover")
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "suspend"}]
    record = await b.runtime.inspect_job(job_id)
    assert record["status"] == "suspended" and record["suspended_from"] == "running"
    assert await _settled(b, job_id) == []  # suspended for an operator: no node takes it
    assert await b.runtime.control.recover(job_id) == job_id  # the operator does
    assert (await b.runtime.inspect_job(job_id))["status"] == "running"


async def test_a_drained_nodes_jobs_are_handed_off_whatever_their_policy(nodes: NodeFactory) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await a.runtime.submit(waiting_job())  # local_restart, on another machine
    assert await a.drain() == [job_id]
    record = await b.runtime.inspect_job(job_id)
    assert record["status"] == "suspended" and record["handoff"] is True
    await eventually_async(lambda: job_id in b.runtime.store.unowned_jobs(), what="lease released")
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "recover"}]
    assert (await b.runtime.inspect_job(job_id))["node"] == "b"
    assert a.info()["draining"] is True


async def test_a_live_owners_job_is_never_taken(nodes: NodeFactory) -> None:
    a, b = await nodes("a"), await nodes("b")
    job_id = await a.runtime.submit(waiting_job("cluster_recover"))
    await a.runtime.writer.flush()
    assert await b.sweep() == []
    assert await b.sweep(startup=True) == []
    assert (await b.runtime.inspect_job(job_id))["node"] == "a"


async def test_nodes_register_and_a_second_live_node_of_the_same_name_is_refused(nodes: NodeFactory) -> None:
    a = await nodes("a")
    listed = {n["name"]: n for n in await a.runtime.inspect_nodes()}
    assert listed["a"]["alive"] and listed["a"]["role"] == "runtime"
    assert listed["a"]["hardware"]["cpu"]["logical_processors"] >= 1
    assert set(listed["a"]["executor_pools"]) == {"default"}
    with pytest.raises(ConfigError, match="already in the cluster"):
        check_join(await a.runtime.inspect_nodes(), "a", VERSION)
    with pytest.raises(ConfigError, match=r"node\(s\) a \(0.1.0\) run another version"):
        check_join(await a.runtime.inspect_nodes(), "z", "0.2.0")


def test_an_incompatible_node_stops_a_new_one_from_joining(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.put_node("old", {"role": "runtime", "version": "9.9.1"}, 60)
    with pytest.raises(ConfigError, match=r"old \(9.9.1\)"):
        check_join(store.list_nodes(), "new", VERSION)
    store.close()


# -- placement --------------------------------------------------------------------------


def node_view(name: str, pools: dict[str, int], jobs: int = 0, **extra: Any) -> dict[str, Any]:
    stats = {p: {"capacity": c, "in_use": 0, "queued": 0, "available": c} for p, c in pools.items()}
    return {"name": name, "alive": True, "role": "runtime", "drain": False, "jobs": jobs, "agents": 0,
            "executor_pools": stats, **extra}  # fmt: skip


def executor_job(pool: str) -> Any:
    worker = {"node_id": "w", "agent_type": "executor", "config": {"pool": pool, "command": ["true"]}}
    return manifest_from_data(manifest([router("entry"), worker], [("entry", "w", "init")]))


def test_a_burst_of_jobs_spreads_over_equal_nodes() -> None:
    placer = Placer()
    cluster = [node_view(n, {"default": 4}) for n in ("a", "b", "c")]
    chosen = [placer.choose(cluster, executor_job("default"))[0] for _ in range(12)]
    assert sorted(chosen.count(n) for n in "abc") == [4, 4, 4]


def test_placement_prefers_free_capacity_and_needs_the_pool() -> None:
    placer = Placer()
    busy = node_view("a", {"default": 4}, jobs=3)
    busy["executor_pools"]["default"]["in_use"] = 4
    cluster = [busy, node_view("b", {"default": 4}), node_view("c", {"default": 4, "gpu": 1})]
    assert placer.choose(cluster, executor_job("gpu"))[0] == "c"
    assert placer.choose(cluster[:2], executor_job("default"))[0] == "b"
    with pytest.raises(NoEligibleNode, match="a has no pool gpu; b has no pool gpu"):
        placer.choose(cluster[:2], executor_job("gpu"))
    with pytest.raises(NoEligibleNode, match="node a cannot host this job: it has no pool gpu"):
        placer.choose(cluster, executor_job("gpu"), pin="a")
    with pytest.raises(NoEligibleNode, match="node zz is not a live runtime node"):
        placer.choose(cluster, executor_job("default"), pin="zz")
    assert placer.choose(cluster, executor_job("default"), pin="a") == ("a", "pinned (--node)")


def test_dead_draining_and_control_nodes_get_no_jobs() -> None:
    placer = Placer()
    cluster = [
        node_view("dead", {"default": 9}, alive=False),
        node_view("draining", {"default": 9}, drain=True),
        node_view("control", {"default": 9}, role="control"),
    ]
    with pytest.raises(NoEligibleNode, match="no live runtime node"):
        placer.choose(cluster, executor_job("default"))
    assert placer.choose([*cluster, node_view("ok", {"default": 1})], executor_job("default"))[0] == "ok"


async def test_a_renewal_that_finds_the_lease_taken_stops_the_job_at_once(nodes: NodeFactory) -> None:
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await a.runtime.submit(waiting_job("cluster_recover"))
    await a.runtime.writer.flush()
    assert a.runtime.leases is not None
    epoch = a.runtime.leases.held[job_id]
    await _dies(a, job_id)
    await _settled(b, job_id)
    stale = a.runtime.jobs[job_id]
    a.runtime.leases.held[job_id] = epoch  # it wakes up and renews what it believes it holds
    await a.runtime.leases.renew()
    assert stale.fenced and job_id not in a.runtime.jobs and job_id not in a.runtime.leases.held
    assert stale.gone.done() and "moved to another node" in stale.gone.result()


async def test_a_live_owner_on_another_machine_is_never_robbed(nodes: NodeFactory) -> None:
    """No answer from a socket that is not on this machine proves nothing: no steal."""
    a, b = await nodes("a", host="box-a"), await nodes("b", host="box-b")
    job_id = await a.runtime.submit(waiting_job("cluster_recover"))
    job = a.runtime.jobs[job_id]
    job.host.control_endpoint = lambda: "unix:///nonexistent/elsewhere.sock"  # type: ignore[method-assign]
    job.touch()
    await a.runtime.writer.flush()
    with pytest.raises(JobStateError, match="still running in a"):
        await b.runtime.control.recover(job_id)
    assert await b.sweep(startup=True) == []
    record = await b.runtime.inspect_job(job_id)
    assert (record["node"], record["lease_epoch"]) == ("a", 1)


async def test_a_local_restart_job_waits_for_a_node_of_its_own_machine(nodes: NodeFactory) -> None:
    a, elsewhere, sibling = await nodes("a", "box-a"), await nodes("b", "box-b"), await nodes("c", "box-a")
    job_id = await _orphaned(a, None)
    assert await _settled(elsewhere, job_id) == []  # c, on a's machine, is alive: not failed
    assert await _settled(sibling, job_id) == [{"job_id": job_id, "action": "recover"}]


async def test_a_job_that_cannot_be_recovered_anywhere_fails_once(nodes: NodeFactory) -> None:
    a, b = await nodes("a", "box-a"), await nodes("b", "box-b")
    job_id = await _orphaned(a, "cluster_recover")
    b.runtime.store.write_batch(WriteBatch(blobs={job_id: {"manifest": {"nodes": "broken"}}}))
    assert await _settled(b, job_id) == [{"job_id": job_id, "action": "fail"}]
    record = await b.runtime.inspect_job(job_id)
    assert record["status"] == "failed" and "cannot recover job" in record["result"]["error"]
    assert await _settled(b, job_id) == []


async def test_a_drain_with_no_other_node_to_take_the_jobs_is_refused(nodes: NodeFactory) -> None:
    a = await nodes("a")
    with pytest.raises(NoEligibleNode, match="no other live runtime node can take the jobs of a"):
        await a.runtime.drain_node("a")
    with pytest.raises(NotFound, match="no node named zz"):
        await a.runtime.drain_node("zz")


async def test_an_owner_that_cannot_renew_for_a_lease_ttl_stops_its_jobs(
    nodes: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await nodes("a")
    job_id = await a.runtime.submit(waiting_job("cluster_recover"))
    job = a.runtime.jobs[job_id]
    keeper = a.runtime.leases
    assert keeper is not None

    def down(*args: Any) -> list[str]:
        raise StoreError("the store does not answer")

    monkeypatch.setattr(a.runtime.store, "renew_leases", down)
    await keeper.renew()
    assert not job.fenced  # one miss within the TTL: it goes on
    keeper.renewed_at -= TTL
    await keeper.renew()
    assert job.fenced and job_id not in a.runtime.jobs
    assert "could not be renewed" in job.gone.result()


async def test_a_runtime_of_this_machine_whose_process_is_gone_loses_its_lease_at_once(
    tmp_path: Path,
) -> None:
    """Named ``<host>:<pid>`` with no such process and its socket gone: provably dead, so
    ``mn job recover`` need not wait for the lease to expire."""
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    url = f"sqlite:///{tmp_path / 's.db'}"
    dead = Runtime(Config(store_url=url, node_name=f"{os.uname().nodename}:{gone.pid}", lease_ttl=60))
    await dead.start()
    job_id = await dead.submit(waiting_job())
    await dead.writer.flush()
    assert dead.leases is not None and dead._control is not None
    dead.leases.held.clear()  # it dies: no renewal, no release
    await dead._control.close()  # and its socket goes with its process
    async with Runtime(Config(store_url=url, node_name="operator", control=False)) as rt:
        assert await rt.control.recover(job_id) == job_id
        record = await rt.inspect_job(job_id)
        assert (record["node"], record["lease_epoch"]) == ("operator", 2)
    dead.jobs.clear()
    await dead.close()
