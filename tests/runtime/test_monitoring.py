"""What monitors read from a runtime: agent statuses, graphs and executor logs, on every store."""

from __future__ import annotations

import asyncio
from typing import Any

from builders import aggregator, manifest, router
from mirror_neuron import Config, Runtime
from mirror_neuron.monitor import JobView
from mirror_neuron.runtime import logs
from mirror_neuron.store import MemoryStore
from mirror_neuron.store.base import WriteBatch


def waiting_job(n: int = 3) -> dict[str, Any]:
    """entry → sink, which completes after ``n`` messages (the start brings one)."""
    return manifest([router("entry"), aggregator("sink", complete_after=n)], [("entry", "sink", "init")])


async def test_agent_statuses_start_with_every_agent_and_end_with_the_job(runtime: Runtime) -> None:
    job_id = await runtime.submit(waiting_job(3))
    seen: list[list[dict[str, Any]]] = []
    async for changed in runtime.agent_statuses(job_id):
        seen.append(changed)
        if len(seen) == 1:
            assert {a["agent_id"] for a in changed} == {"entry", "sink"}
            for n in (1, 2):
                await runtime.control.send_message(job_id, "sink", {"type": "init", "payload": {"n": n}})
    final = {a["agent_id"]: a for batch in seen for a in batch}  # the last status of each
    assert final["sink"]["status"] == "completed" and final["sink"]["processed"] == 3
    assert final["sink"]["mailbox_depth"] == 0 and final["sink"]["last_error"] is None
    for batch in seen:
        assert len({a["agent_id"] for a in batch}) == len(batch)


async def test_a_reader_elsewhere_sees_statuses_from_the_store(store: Any) -> None:
    if isinstance(store, MemoryStore):
        return  # one process: nothing is elsewhere
    async with Runtime(Config(store_url=store.url), store=store) as host:
        job_id = await host.submit(waiting_job(2))
        async with Runtime(Config(store_url=store.url, control=False), store=store) as reader:
            stream = reader.agent_statuses(job_id)
            first = await anext(stream)
            assert {a["agent_id"] for a in first} == {"entry", "sink"}
            await host.control.send_message(job_id, "sink", {"type": "init", "payload": {}})
            rest = [a for batch in [b async for b in stream] for a in batch]
            assert [a for a in rest if a["agent_id"] == "sink"][-1]["status"] == "completed"
            graph = await reader.graph(job_id)
            assert [n["id"] for n in graph["nodes"]] == ["entry", "sink"]
            record = await reader.inspect_job(job_id)
            assert record["last_seq"] == len(await reader.events(job_id))


async def test_the_graph_of_an_ended_memory_job_is_kept() -> None:
    async with Runtime(Config(), store=MemoryStore()) as rt:
        job_id, record = await rt.run(waiting_job(1))
        assert record["status"] == "completed" and job_id not in rt.jobs
        graph = await rt.graph(job_id)
        assert graph["job_id"] == job_id and graph["edges"][0]["message_type"] == "init"


class Owner:
    def __init__(self) -> None:
        self.blobs: dict[str, Any] = {}


def test_logs_keep_the_newest_runs_in_order_and_cap_each_stream() -> None:
    owner, store = Owner(), MemoryStore()

    for invocation in range(1, logs.KEEP + 11):
        logs.record(owner, "w", invocation, {"stdout": f"run {invocation}\n", "stderr": ""})
    logs.record(owner, "w", logs.KEEP + 11, {"stdout": "x\n" * logs.LOG_CAP, "stderr": "end"})
    store.write_batch(WriteBatch(blobs={"j": owner.blobs}))

    runs = asyncio.run(logs.read(store, "j", "w"))
    assert [r["invocation"] for r in runs] == list(range(12, logs.KEEP + 12))
    assert runs[0]["stdout"] == "run 12\n"
    last = runs[-1]
    assert last["stdout_truncated"] is True and len(last["stdout"]) <= logs.LOG_CAP
    assert last["stdout"].startswith("x\n") and "stderr_truncated" not in last
    assert [r["invocation"] for r in asyncio.run(logs.read(store, "j", "w", after=logs.KEEP + 9))] == [
        logs.KEEP + 10,
        logs.KEEP + 11,
    ]
    assert asyncio.run(logs.read(store, "j", "nobody")) == []


def test_a_job_view_folds_updates() -> None:
    record = {"job_id": "j", "status": "running", "submitted_at": "2026-01-01T00:00:00.000Z"}
    graph = {
        "nodes": [
            {"id": "a", "agent_type": "router", "kind": "router"},
            {"id": "b", "agent_type": "executor"},
        ]
    }
    view = JobView.start(record, graph, [{"agent_id": "a", "status": "idle", "processed_messages": 2}])
    assert view.counts() == {"idle": 1, "initializing": 1} and view.processed() == 2
    view.apply("event", {"seq": 1, "type": "agent_message_received", "agent_id": "b"})
    view.apply("event", {"seq": 1, "type": "agent_message_received", "agent_id": "b"})  # a repeat
    view.apply(
        "agents",
        [{"agent_id": "b", "status": "failed", "mailbox_depth": 3, "processed": 1, "last_error": "boom"}],
    )
    view.apply(
        "event",
        {
            "seq": 2,
            "type": "job_failed",
            "agent_id": "b",
            "reason": "boom",
            "timestamp": "2026-01-01T00:00:05.000Z",
        },
    )
    view.apply("end", {"status": "failed"})
    assert view.event_count == 2 and view.last_seq == 2 and view.ended
    assert view.status == "failed" and view.failure_reason() == "b: boom"
    assert [r.agent_id for r in view.failures()] == ["b"] and view.queued() == 3
    assert view.elapsed() == 5.0
    assert [e["seq"] for e in view.events_matching("FAILED")] == [2]
    assert [e["seq"] for e in view.events_matching("b")] == [1, 2]
