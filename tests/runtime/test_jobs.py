"""End-to-end jobs on the runtime: routing, lifecycle, events and persistence."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from builders import EXAMPLES, aggregator, manifest, router, sensor
from mirror_neuron import JobNotFound, JobTimeout, ManifestError, Runtime

RESEARCH_INPUT = {
    "topic": "electric vehicle charging adoption in New England",
    "text": "Collect a short research summary.",
}


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_research_flow_completes_with_the_exact_original_result(runtime: Runtime) -> None:
    job_id, job = await runtime.run(str(EXAMPLES / "research_flow"), timeout=10)
    assert job["status"] == "completed"
    assert job["result"] == {
        "agent_id": "reviewer",
        "output": {"messages": [RESEARCH_INPUT], "count": 1, "last_message": RESEARCH_INPUT},
    }
    assert job_id.startswith("research_flow_v1-")
    events = await runtime.events(job_id)
    received = [e["agent_id"] for e in events if e["type"] == "agent_message_received"]
    assert sorted(received) == ["ingress", "retriever", "reviewer"]
    by_agent = {e["agent_id"]: e["payload"] for e in events if e["type"] == "agent_message_received"}
    assert by_agent["ingress"]["type"] == "init" and by_agent["ingress"]["class"] == "command"
    assert by_agent["retriever"]["type"] == "research_request"  # rewritten by emit_type
    assert by_agent["reviewer"]["type"] == "research_request"  # kept by the plain router


async def test_events_are_ordered_and_carry_the_original_fields(runtime: Runtime) -> None:
    job_id, _ = await runtime.run(str(EXAMPLES / "research_flow"), timeout=10)
    events = await runtime.events(job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert types(events)[:4] == ["job_pending", "job_validated", "job_scheduled", "job_running"]
    assert types(events)[-1] == "job_completed"
    for e in events:
        assert e["job_id"] == job_id
        assert e["timestamp"].endswith("Z") and len(e["timestamp"]) == 24
    completed = events[-1]
    assert completed["agent_id"] == "reviewer" and completed["result"]["count"] == 1
    assert "node" in events[2]
    received = next(e for e in events if e["type"] == "agent_message_received")
    assert set(received["payload"]) == {
        "message_id",
        "from",
        "to",
        "type",
        "class",
        "content_type",
        "content_encoding",
        "stream",
    }


async def test_fan_out_sends_a_copy_along_every_matching_edge(runtime: Runtime) -> None:
    job_id, job = await runtime.run(str(EXAMPLES / "fan_out_fan_in"), timeout=10)
    assert job["status"] == "completed"
    output = job["result"]["output"]
    assert output["count"] == 4
    events = await runtime.events(job_id)
    senders = [
        e["payload"]["from"]
        for e in events
        if e["type"] == "agent_message_received" and e["agent_id"] == "collector"
    ]
    assert sorted(senders) == ["finance", "legal", "security", "style"]
    ids = {e["payload"]["message_id"] for e in events if e["type"] == "agent_message_received"}
    assert len(ids) == len([e for e in events if e["type"] == "agent_message_received"])


async def test_complete_after_emits_then_a_sensor_completes(runtime: Runtime) -> None:
    job_id, job = await runtime.run(str(EXAMPLES / "batch_alarm"), timeout=10)
    assert job["status"] == "completed"
    assert job["result"]["agent_id"] == "alarm"
    batch = job["result"]["output"]["last_message"]
    assert batch["count"] == 5
    assert [m["celsius"] for m in batch["messages"]] == [71, 74, 79, 86, 94]
    events = await runtime.events(job_id)
    assert [e["payload"]["count"] for e in events if e["type"] == "aggregator_received"] == [1, 2, 3, 4, 5]
    assert [e["payload"] for e in events if e["type"] == "sensor_observed"] == [{"count": 1}]


async def test_list_initial_inputs_reach_every_entrypoint(runtime: Runtime) -> None:
    data = manifest(
        [router("a", emit_type="x"), router("b", emit_type="x"), aggregator("sink", complete_after=4)],
        [("a", "sink", "x"), ("b", "sink", "x")],
        entrypoints=["a", "b"],
        initial_inputs=[{"n": 1}, {"n": 2}],
    )
    _, job = await runtime.run(data, timeout=10)
    assert job["status"] == "completed"
    assert sorted(m["n"] for m in job["result"]["output"]["messages"]) == [1, 1, 2, 2]


async def test_an_entrypoint_without_input_gets_one_empty_init_message(runtime: Runtime) -> None:
    data = manifest([router("a"), aggregator("sink", complete_on_message=True)], [("a", "sink", "init")])
    job_id, job = await runtime.run(data, timeout=10)
    assert job["result"]["output"]["messages"] == [{}]
    events = await runtime.events(job_id)
    first = next(e for e in events if e["type"] == "agent_message_received")
    assert first["payload"]["type"] == "init" and first["payload"]["from"] == "runtime"


async def test_flat_input_keys_set_the_envelope_and_leave_the_body(runtime: Runtime) -> None:
    data = manifest(
        [router("a"), aggregator("sink", complete_on_message=True)],
        [("a", "sink", "manual_result")],
        initial_inputs={"a": [{"type": "manual_result", "class": "event", "payload": {"ok": True}}]},
    )
    _, job = await runtime.run(data, timeout=10)
    assert job["status"] == "completed"
    assert job["result"]["output"]["last_message"] == {"ok": True}


async def test_unmatched_emits_are_dropped_and_the_job_keeps_running(memory_runtime: Runtime) -> None:
    data = manifest(
        [router("a", emit_type="nowhere"), aggregator("sink", complete_on_message=True)], [("a", "sink", "x")]
    )
    job_id = await memory_runtime.submit(data)
    with pytest.raises(JobTimeout):
        await memory_runtime.wait(job_id, timeout=0.2)
    assert (await memory_runtime.inspect_job(job_id))["status"] == "running"


async def test_the_first_completion_wins_and_is_never_overwritten(runtime: Runtime) -> None:
    data = manifest(
        [
            router("fan"),
            aggregator("first", complete_on_message=True),
            aggregator("second", complete_on_message=True),
        ],
        [("fan", "first", "init"), ("fan", "second", "init")],
    )
    job_id, job = await runtime.run(data, timeout=10)
    assert job["result"]["agent_id"] == "first"
    events = await runtime.events(job_id)
    assert types(events).count("job_completed") == 1
    stored = await runtime.inspect_job(job_id)
    assert stored["status"] == "completed" and stored["result"]["agent_id"] == "first"


async def test_agents_stop_taking_messages_when_the_job_ends(runtime: Runtime) -> None:
    # The sink completes on its first message; the other three copies must never be handled.
    data = manifest(
        [router("fan"), router("w1"), router("w2"), aggregator("sink", complete_on_message=True)],
        [("fan", "w1", "init"), ("fan", "w2", "init"), ("w1", "sink", "init"), ("w2", "sink", "init")],
        initial_inputs={"fan": [{"i": 1}, {"i": 2}]},
    )
    job_id, _ = await runtime.run(data, timeout=10)
    agents = {a["agent_id"]: a for a in await runtime.inspect_agents(job_id)}
    assert agents["sink"]["processed_messages"] == 1
    assert agents["sink"]["status"] == "completed"
    assert all(a["mailbox_depth"] == 0 for a in agents.values())
    assert {a["status"] for k, a in agents.items() if k != "sink"} == {"stopped"}
    events = await runtime.events(job_id)
    assert types(events)[-1] == "job_completed"
    handled_after = types(events)[types(events).index("job_completed") :]
    assert "agent_message_received" not in handled_after


async def test_a_job_that_stays_quiet_keeps_running_until_it_times_out(memory_runtime: Runtime) -> None:
    data = manifest([router("a"), aggregator("sink", complete_after=2)], [("a", "sink", "init")])
    job_id = await memory_runtime.submit(data)
    with pytest.raises(JobTimeout, match="timed out waiting for job"):
        await memory_runtime.wait(job_id, timeout=0.1)
    agents = {a["agent_id"]: a for a in await memory_runtime.inspect_agents(job_id)}
    assert agents["sink"]["current_state"]["count"] == 1
    assert agents["sink"]["status"] == "idle"


async def test_wait_for_an_unknown_job_raises_at_once(runtime: Runtime) -> None:
    with pytest.raises(JobNotFound, match="job nope was not found"):
        await asyncio.wait_for(runtime.wait("nope"), timeout=2)
    with pytest.raises(JobNotFound):
        await runtime.inspect_job("nope")
    with pytest.raises(JobNotFound):
        await runtime.inspect_agents("nope")
    with pytest.raises(JobNotFound):
        await runtime.events("nope")


async def test_an_invalid_manifest_starts_nothing_and_stores_nothing(runtime: Runtime) -> None:
    with pytest.raises(ManifestError) as err:
        await runtime.submit({"manifest_version": "1.0", "nodes": []})
    assert "graph_id is required" in err.value.errors
    assert "nodes must not be empty" in err.value.errors
    assert await runtime.list_jobs() == []


async def test_records_and_snapshots_are_persisted_for_other_readers(runtime: Runtime) -> None:
    job_id, job = await runtime.run(str(EXAMPLES / "research_flow"), timeout=10)
    store = runtime.store
    record = store.get_job(job_id)
    assert record["status"] == "completed" and record["result"] == job["result"]
    for key in (
        "job_id",
        "graph_id",
        "job_name",
        "submitted_at",
        "updated_at",
        "root_agent_ids",
        "placement_policy",
        "recovery_policy",
        "manifest_ref",
    ):
        assert key in record
    assert record["root_agent_ids"] == ["ingress"]
    assert record["manifest_ref"]["job_path"] == str(EXAMPLES / "research_flow")
    snaps = store.get_agents(job_id)
    assert [s["agent_id"] for s in snaps] == ["ingress", "retriever", "reviewer"]
    reviewer = snaps[2]
    assert reviewer["agent_type"] == "aggregator" and reviewer["type"] == "reduce"
    assert reviewer["processed_messages"] == 1 and reviewer["metadata"]["paused"] is False
    assert snaps[0]["metadata"]["outbound_edges"] == ["retriever"]
    assert store.read_events(job_id)[-1]["type"] == "job_completed"
    json.dumps(record)  # records are plain JSON


async def test_list_jobs_shows_newest_first_and_filters_terminal(memory_runtime: Runtime) -> None:
    done_id, _ = await memory_runtime.run(str(EXAMPLES / "research_flow"), timeout=10)
    quiet = manifest([router("a"), aggregator("sink", complete_after=5)], [("a", "sink", "init")])
    live_id = await memory_runtime.submit(quiet)
    jobs = await memory_runtime.list_jobs()
    assert [j["job_id"] for j in jobs][:2] == [live_id, done_id]
    live = await memory_runtime.list_jobs(include_terminal=False)
    assert [j["job_id"] for j in live] == [live_id]


async def test_closing_the_runtime_fails_live_jobs_with_a_clear_reason() -> None:
    from mirror_neuron.store import MemoryStore

    store = MemoryStore()
    rt = Runtime(store=store)
    await rt.start()
    job_id = await rt.submit(
        manifest([router("a"), aggregator("sink", complete_after=5)], [("a", "sink", "init")])
    )
    await rt.close()
    record = store.get_job(job_id)
    assert record["status"] == "failed"
    assert record["result"]["error"] == "runtime stopped before the job finished"


async def test_many_jobs_run_concurrently_on_one_runtime(memory_runtime: Runtime) -> None:
    ids = [await memory_runtime.submit(str(EXAMPLES / "fan_out_fan_in")) for _ in range(20)]
    jobs = await asyncio.gather(*(memory_runtime.wait(i, timeout=10) for i in ids))
    assert {j["status"] for j in jobs} == {"completed"}
    assert {j["result"]["output"]["count"] for j in jobs} == {4}


async def test_a_wildcard_edge_takes_every_message_type(memory_runtime: Runtime) -> None:
    data = manifest(
        [router("a", emit_type="anything"), sensor("s", complete_job=True)],
        [("a", "s", "*")],
    )
    _, job = await memory_runtime.run(data, timeout=10)
    assert job["status"] == "completed" and job["result"]["agent_id"] == "s"


async def test_follow_streams_every_event_once_and_ends_with_the_job(runtime: Runtime) -> None:
    data = manifest([router("a"), aggregator("sink", complete_after=2)], [("a", "sink", "init")])
    job_id = await runtime.submit(data)
    seen: list[dict[str, Any]] = []
    following = asyncio.Event()

    async def follow() -> None:
        async for event in runtime.follow(job_id):
            seen.append(event)
            following.set()

    follower = asyncio.create_task(follow())
    await following.wait()  # the rest happens while it follows
    await runtime.control.send_message(job_id, "sink", {"late": True})
    await asyncio.wait_for(follower, 10)
    stored = await runtime.events(job_id)
    assert seen == stored
    assert seen[-1]["type"] == "job_completed"
    resumed = [e async for e in runtime.follow(job_id, after=3)]
    assert [e["seq"] for e in resumed] == [e["seq"] for e in stored[3:]]


async def test_a_follower_that_falls_behind_reads_on_from_the_store(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirror_neuron.runtime import reads

    monkeypatch.setattr(reads, "FOLLOW_BUFFER", 2)
    n = 50
    data = manifest(
        [router("a"), aggregator("sink", complete_after=n)],
        [("a", "sink", "init")],
        initial_inputs={"a": [{"i": i} for i in range(n)]},
    )
    job_id = await runtime.submit(data)
    stream = runtime.follow(job_id)
    first = await anext(stream)  # subscribed; now let the job run far ahead of us
    await runtime.wait(job_id, timeout=10)
    rest = [e async for e in stream]
    assert [first, *rest] == await runtime.events(job_id)
    assert runtime.jobs.get(job_id) is None or not runtime.jobs[job_id].listeners
