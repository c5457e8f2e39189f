"""The Ownership protocol (job leases with fencing epochs, the node registry), checked
against every store: a runtime's cluster code must work the same on each of them."""

from __future__ import annotations

from typing import Any

import pytest

from mirror_neuron.errors import LeaseLost, StoreError
from mirror_neuron.events import Event
from mirror_neuron.store import Store, WriteBatch
from mirror_neuron.store.ownership import Lease, Ownership
from store.test_store_contract import job
from waiting import eventually

#: Long enough that a lease taken with it never expires during a test.
LONG = 60.0
#: Short enough to wait out: a lease or node with it expires at once, in test terms.
SHORT = 0.05


def events(job_id: str, first: int, last: int) -> list[Event]:
    return [
        Event(seq, "agent_message_received", job_id, 1_700_000_000.0 + seq) for seq in range(first, last + 1)
    ]


def expired(store: Store, job_id: str) -> Lease:
    """Wait until the job's lease has expired (it must stay readable); the expired lease."""

    def check() -> Lease | None:
        lease = store.get_lease(job_id)
        assert lease is not None, f"the lease of {job_id} vanished instead of expiring"
        return None if lease.live else lease

    lease = eventually(check, what=f"the lease of {job_id} expires")
    assert lease is not None
    return lease


def test_store_is_an_ownership(store: Store) -> None:
    assert isinstance(store, Ownership)


# -- claims -----------------------------------------------------------------------------------


def test_first_claim_is_epoch_1_and_reads_back_as_a_live_lease(store: Store) -> None:
    assert store.get_lease("j1") is None
    assert store.claim_job("j1", "a", LONG) == 1
    lease = store.get_lease("j1")
    assert lease is not None
    assert (lease.job_id, lease.node, lease.epoch) == ("j1", "a", 1)
    assert lease.live
    assert LONG - 5 < lease.expires_in <= LONG


def test_a_live_lease_cannot_be_claimed_by_another_node_nor_again_by_its_holder(store: Store) -> None:
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j1", "b", LONG) is None
    assert store.claim_job("j1", "a", LONG) is None
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch) == ("a", 1)


def test_leases_of_different_jobs_are_independent(store: Store) -> None:
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j2", "b", LONG) == 1
    lease = store.get_lease("j2")
    assert lease is not None and lease.node == "b"


def test_steal_takes_a_live_lease_with_the_next_epoch(store: Store) -> None:
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j1", "b", LONG, steal=True) == 2
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch, lease.live) == ("b", 2, True)


def test_an_expired_lease_stays_readable_and_is_claimed_with_the_next_epoch(store: Store) -> None:
    assert store.claim_job("j1", "a", SHORT) == 1
    old = expired(store, "j1")
    assert (old.node, old.epoch) == ("a", 1)
    assert old.expires_in <= 0
    assert store.claim_job("j1", "b", LONG) == 2
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch, lease.live) == ("b", 2, True)


# -- renewal and release ----------------------------------------------------------------------


def test_renew_extends_the_leases_and_names_the_lost_ones(store: Store) -> None:
    assert store.claim_job("j1", "a", 1.0) == 1
    assert store.claim_job("j2", "a", LONG) == 1
    assert store.claim_job("j2", "b", LONG, steal=True) == 2
    assert store.renew_leases("a", {"j1": 1, "j2": 1}, LONG) == ["j2"]
    kept = store.get_lease("j1")
    assert kept is not None and kept.node == "a" and kept.expires_in > LONG - 5
    lost = store.get_lease("j2")  # renewing a lost lease leaves the new owner's alone
    assert lost is not None and (lost.node, lost.epoch) == ("b", 2)


def test_renew_of_nothing_loses_nothing(store: Store) -> None:
    assert store.renew_leases("a", {}, LONG) == []


def test_renew_takes_back_an_expired_lease_nobody_claimed(store: Store) -> None:
    assert store.claim_job("j1", "a", SHORT) == 1
    expired(store, "j1")
    assert store.renew_leases("a", {"j1": 1}, LONG) == []
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch, lease.live) == ("a", 1, True)
    assert store.claim_job("j1", "b", LONG) is None


def test_renew_after_an_expired_lease_was_claimed_is_lost(store: Store) -> None:
    assert store.claim_job("j1", "a", SHORT) == 1
    expired(store, "j1")
    assert store.claim_job("j1", "b", LONG) == 2
    assert store.renew_leases("a", {"j1": 1}, LONG) == ["j1"]
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch) == ("b", 2)


def test_release_only_by_the_holder_under_its_epoch_then_the_next_claim_is_immediate(store: Store) -> None:
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.release_job("j1", "b", 1) is False
    assert store.release_job("j1", "a", 2) is False
    assert store.get_lease("j1") is not None
    assert store.release_job("j1", "a", 1) is True
    assert store.get_lease("j1") is None
    assert store.release_job("j1", "a", 1) is False  # nothing left to release
    assert store.claim_job("j1", "b", LONG) == 2


def test_release_of_a_lease_that_was_stolen_keeps_the_new_owners(store: Store) -> None:
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j1", "b", LONG, steal=True) == 2
    assert store.release_job("j1", "a", 1) is False
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch) == ("b", 2)


# -- fencing ----------------------------------------------------------------------------------


def full_batch(*job_ids: str, updated_at: str, epochs: dict[str, int]) -> WriteBatch:
    """A batch that writes every kind of thing for each job."""
    batch = WriteBatch(epochs=epochs)
    for job_id in job_ids:
        batch.jobs.append(job(job_id, updated_at=updated_at))
        batch.events[job_id] = events(job_id, 1, 3)
        batch.agents[job_id] = [{"agent_id": "a1", "status": "idle"}]
        batch.messages[job_id] = [("a1", 1, {"body": "hi"})]
        batch.blobs[job_id] = {"output": {"x": 1}}
    return batch


def nothing_written(store: Store, job_id: str) -> None:
    assert store.get_job(job_id) == job(job_id)
    assert store.read_events(job_id) == []
    assert store.get_agents(job_id) == []
    assert store.read_mailboxes(job_id) == {}
    assert store.get_blob(job_id, "output") is None


def test_a_stale_epoch_refuses_the_whole_batch(store: Store) -> None:
    for job_id in ("j1", "j2"):
        store.create_job(job(job_id))
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j2", "a", LONG) == 1
    assert store.claim_job("j1", "b", LONG, steal=True) == 2
    batch = full_batch("j1", "j2", updated_at="2024-02-01T00:00:00.000Z", epochs={"j1": 1, "j2": 1})
    with pytest.raises(LeaseLost) as raised:
        store.write_batch(batch)
    assert raised.value.job_ids == ["j1"]
    assert isinstance(raised.value, StoreError)
    nothing_written(store, "j1")
    nothing_written(store, "j2")  # its epoch was right, but the batch is all or nothing


def test_lease_lost_names_every_stale_job(store: Store) -> None:
    ids = ["job one", "j2", "j3"]  # an id with a space is named exactly
    for job_id in ids:
        store.create_job(job(job_id))
        assert store.claim_job(job_id, "a", LONG) == 1
    for job_id in ("job one", "j3"):
        assert store.claim_job(job_id, "b", LONG, steal=True) == 2
    batch = full_batch(*ids, updated_at="2024-02-01T00:00:00.000Z", epochs=dict.fromkeys(ids, 1))
    with pytest.raises(LeaseLost) as raised:
        store.write_batch(batch)
    assert raised.value.job_ids == ["j3", "job one"]
    for job_id in ids:
        nothing_written(store, job_id)


def test_an_epoch_for_a_job_never_claimed_is_stale(store: Store) -> None:
    store.create_job(job("j1"))
    with pytest.raises(LeaseLost, match="j1"):
        store.write_batch(full_batch("j1", updated_at="2024-02-01T00:00:00.000Z", epochs={"j1": 1}))
    nothing_written(store, "j1")


def test_the_current_epoch_writes(store: Store) -> None:
    store.create_job(job("j1"))
    store.create_job(job("j2"))
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.claim_job("j1", "b", LONG, steal=True) == 2
    store.write_batch(full_batch("j1", "j2", updated_at="2024-02-01T00:00:00.000Z", epochs={"j1": 2}))
    assert store.get_job("j1") == job("j1", updated_at="2024-02-01T00:00:00.000Z")
    assert [row["seq"] for row in store.read_events("j1")] == [1, 2, 3]
    assert store.get_blob("j1", "output") == {"x": 1}
    assert store.get_job("j2") == job("j2", updated_at="2024-02-01T00:00:00.000Z")  # unleased: no check


def test_an_expired_lease_nobody_claimed_still_writes(store: Store) -> None:
    store.create_job(job("j1"))
    assert store.claim_job("j1", "a", SHORT) == 1
    expired(store, "j1")
    store.write_batch(full_batch("j1", updated_at="2024-02-01T00:00:00.000Z", epochs={"j1": 1}))
    assert [row["seq"] for row in store.read_events("j1")] == [1, 2, 3]


# -- unowned jobs -----------------------------------------------------------------------------


def test_unowned_jobs_are_live_jobs_without_a_live_lease_oldest_update_first(store: Store) -> None:
    stamps = iter(f"2024-01-0{day}T00:00:00.000Z" for day in range(1, 10))
    for job_id in ("free", "expired", "leased", "released"):
        store.create_job(job(job_id, updated_at=next(stamps)))
    store.create_job(job("done", "completed", updated_at=next(stamps)))
    store.create_job(job("finished", updated_at=next(stamps)))
    store.write_batch(WriteBatch(jobs=[job("finished", "failed", updated_at=next(stamps))]))
    assert store.claim_job("leased", "a", LONG) == 1
    assert store.claim_job("released", "a", LONG) == 1
    assert store.release_job("released", "a", 1)
    assert store.claim_job("expired", "a", SHORT) == 1
    expired(store, "expired")
    assert store.unowned_jobs() == ["free", "expired", "released"]
    assert store.unowned_jobs(limit=2) == ["free", "expired"]
    assert store.claim_job("free", "b", LONG) == 1
    assert store.unowned_jobs() == ["expired", "released"]


def test_renew_never_brings_back_a_released_lease(store: Store) -> None:
    assert store.claim_job("j", "a", 30) == 1
    assert store.release_job("j", "a", 1)
    assert store.renew_leases("a", {"j": 1}, 30) == ["j"]  # a renewal that raced the release
    assert store.get_lease("j") is None
    assert store.claim_job("j", "b", 30) == 2  # free at once


def test_unowned_jobs_leave_out_jobs_suspended_for_an_operator_but_not_handed_off_ones(store: Store) -> None:
    held = {**job("held", "suspended"), "handoff": False}
    moving = {**job("moving", "suspended"), "handoff": True}
    store.write_batch(WriteBatch(jobs=[held, moving, job("dead", "running")]))
    assert sorted(store.unowned_jobs()) == ["dead", "moving"]


def test_unowned_jobs_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.unowned_jobs() == []
    assert store.claim_job("not-yet-created", "a", SHORT) == 1  # a lease alone is no job
    expired(store, "not-yet-created")
    assert store.unowned_jobs() == []


# -- delete_job -------------------------------------------------------------------------------


def test_delete_job_removes_its_lease(store: Store) -> None:
    store.create_job(job("j1"))
    assert store.claim_job("j1", "a", LONG) == 1
    assert store.delete_job("j1")
    assert store.get_lease("j1") is None
    store.create_job(job("j1"))
    epoch = store.claim_job("j1", "b", LONG)  # the old live lease is gone with the job
    assert epoch is not None
    lease = store.get_lease("j1")
    assert lease is not None and (lease.node, lease.epoch) == ("b", epoch)


# -- nodes ------------------------------------------------------------------------------------


def names(store: Store) -> list[str]:
    return [node["name"] for node in store.list_nodes()]


def test_a_registered_node_is_listed_alive_with_its_info(store: Store) -> None:
    assert store.list_nodes() == []
    store.put_node("n2", {"host": "h2"}, LONG)
    store.put_node("n1", {"host": "h1", "pid": 7, "tags": ["x"]}, LONG)
    nodes = store.list_nodes()
    assert [node["name"] for node in nodes] == ["n1", "n2"]
    first = nodes[0]
    assert {k: first[k] for k in ("host", "pid", "tags", "alive", "drain")} == {
        "host": "h1",
        "pid": 7,
        "tags": ["x"],
        "alive": True,
        "drain": False,
    }
    assert 0 <= first["seen_ago"] < 5


def test_put_node_replaces_the_info(store: Store) -> None:
    store.put_node("n1", {"host": "h1", "pid": 7}, LONG)
    store.put_node("n1", {"host": "h9"}, LONG)
    [node] = store.list_nodes()
    assert node["host"] == "h9"
    assert "pid" not in node


def test_a_node_without_heartbeat_is_listed_dead_after_its_ttl_and_a_heartbeat_revives_it(
    store: Store,
) -> None:
    store.put_node("n1", {}, SHORT)
    eventually(lambda: not store.list_nodes()[0]["alive"], what="n1 is listed dead")
    assert names(store) == ["n1"]  # dead, but not forgotten yet
    store.put_node("n1", {}, LONG)
    assert store.list_nodes()[0]["alive"] is True


def test_request_drain_marks_a_registered_node_and_survives_heartbeats(store: Store) -> None:
    assert store.request_drain("ghost") is False
    assert names(store) == []  # asking did not register it
    store.put_node("n1", {}, LONG)
    store.put_node("n2", {}, LONG)
    assert store.request_drain("n1") is True
    assert store.request_drain("n1") is True  # asking twice is harmless
    store.put_node("n1", {"host": "h"}, LONG)
    assert {node["name"]: node["drain"] for node in store.list_nodes()} == {"n1": True, "n2": False}


def test_remove_node_forgets_it_and_its_drain_request(store: Store) -> None:
    store.put_node("n1", {}, LONG)
    store.put_node("n2", {}, LONG)
    assert store.request_drain("n1")
    store.remove_node("n1")
    assert names(store) == ["n2"]
    assert store.request_drain("n1") is False
    store.remove_node("never-there")  # harmless
    store.put_node("n1", {}, LONG)
    assert {node["name"]: node["drain"] for node in store.list_nodes()} == {"n1": False, "n2": False}


# -- Redis only -------------------------------------------------------------------------------


def test_redis_forgets_a_node_dead_for_longer_than_node_forget(make_redis_store: Any, raw_redis: Any) -> None:
    from mirror_neuron.store.ownership import NODE_FORGET

    store = make_redis_store()
    store.put_node("old", {}, 1.0)
    store.put_node("new", {}, LONG)
    seconds, _ = raw_redis.time()
    long_ago = (seconds - NODE_FORGET - 10) * 1000
    raw_redis.hset(store.keys.nodes_seen, "old", f"{long_ago} 1000")
    assert names(store) == ["new"]
    assert not raw_redis.hexists(store.keys.nodes, "old")
    assert not raw_redis.hexists(store.keys.nodes_seen, "old")


def test_redis_lease_keys_are_in_the_namespace_and_deleted_with_the_job(
    make_redis_store: Any, raw_redis: Any
) -> None:
    store = make_redis_store()
    store.create_job(job("j1"))
    assert store.claim_job("j1", "a", LONG) == 1
    epoch_key, lease_key = store.keys.epoch("j1"), store.keys.lease("j1")
    assert epoch_key.startswith(store.namespace + ":") and lease_key.startswith(store.namespace + ":")
    assert raw_redis.get(epoch_key) == b"1"
    assert raw_redis.hget(lease_key, "node") == b"a"
    assert store.delete_job("j1")
    assert raw_redis.exists(epoch_key, lease_key) == 0
