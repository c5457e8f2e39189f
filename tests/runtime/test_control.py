"""Job control: pause, resume, cancel, send_message, bounded mailboxes and dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router, sensor
from mirror_neuron import AgentNotFound, Config, JobNotFound, JobStateError, MessageError, Runtime
from mirror_neuron.errors import MailboxFull
from mirror_neuron.states import AgentStatus
from waiting import eventually_async


def collect(n: int, **config: Any) -> dict[str, Any]:
    """entry router → sink aggregator completing after ``n`` messages."""
    return manifest(
        [router("entry"), aggregator("sink", complete_after=n, **config)], [("entry", "sink", "init")]
    )


async def idle(rt: Runtime) -> None:
    """Let the scheduler drain everything that is runnable (deterministic: no timers involved)."""
    for _ in range(20):
        await asyncio.sleep(0)
        if not rt.scheduler.runq:
            return


async def test_pause_then_send_while_paused_then_resume_processes_the_backlog_in_order(
    runtime: Runtime,
) -> None:
    job_id = await runtime.submit(collect(4))
    await idle(runtime)
    assert (await runtime.control.pause(job_id))["status"] == "paused"
    assert (await runtime.inspect_job(job_id))["status"] == "paused"
    results = [await runtime.control.send_message(job_id, "sink", {"n": n}) for n in (1, 2, 3)]
    assert [r["status"] for r in results] == ["enqueued"] * 3
    await idle(runtime)
    agents = {a["agent_id"]: a for a in await runtime.inspect_agents(job_id)}
    assert agents["sink"]["mailbox_depth"] == 3 and agents["sink"]["processed_messages"] == 1
    assert agents["sink"]["status"] == "paused"
    assert all(a["metadata"]["paused"] for a in agents.values())
    assert [m["body"] for m in agents["sink"]["pending_messages"]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    resumed = await runtime.control.resume(job_id)
    assert resumed["backlog"] == 3
    job = await runtime.wait(job_id, timeout=10)
    assert job["status"] == "completed"
    assert job["result"]["output"]["messages"] == [{}, {"n": 1}, {"n": 2}, {"n": 3}]
    types = [e["type"] for e in await runtime.events(job_id)]
    assert types.index("job_paused") < types.index("job_resumed") < types.index("job_completed")


async def test_pause_and_resume_only_from_the_right_state(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(collect(3))
    with pytest.raises(JobStateError, match="is not paused"):
        await memory_runtime.control.resume(job_id)
    await memory_runtime.control.pause(job_id)
    with pytest.raises(JobStateError, match=r"is not running \(status: paused\)"):
        await memory_runtime.control.pause(job_id)
    await memory_runtime.control.resume(job_id)
    await memory_runtime.control.cancel(job_id)
    with pytest.raises(JobStateError):
        await memory_runtime.control.pause(job_id)


async def test_agents_that_already_finished_are_not_marked_paused(memory_runtime: Runtime) -> None:
    data = manifest([router("a"), sensor("s", complete_after=5, complete_job=True)], [("a", "s", "init")])
    job_id = await memory_runtime.submit(data)
    await idle(memory_runtime)
    job = memory_runtime.jobs[job_id]
    job.cells["a"].move(AgentStatus.COMPLETED)  # an agent that finished its part of the work
    await memory_runtime.control.pause(job_id)
    agents = {a["agent_id"]: a for a in await memory_runtime.inspect_agents(job_id)}
    assert agents["a"]["metadata"]["paused"] is False
    assert agents["s"]["metadata"]["paused"] is True


async def test_cancel_ends_the_job_drops_queued_mail_and_counts_it(runtime: Runtime) -> None:
    job_id = await runtime.submit(collect(10))
    await idle(runtime)
    await runtime.control.pause(job_id)
    for n in range(3):
        await runtime.control.send_message(job_id, "sink", {"n": n})
    result = await runtime.control.cancel(job_id)
    assert result == {"job_id": job_id, "status": "cancelled", "dropped_messages": 3}
    job = await runtime.wait(job_id, timeout=10)
    assert job["status"] == "cancelled" and job["result"] == {"reason": "cancelled by operator"}
    events = await runtime.events(job_id)
    cleared = next(e for e in events if e["type"] == "mailbox_cleared")
    assert cleared["payload"] == {"count": 3, "reason": "cancelled"}
    assert events[-1]["type"] == "job_cancelled"
    agents = await runtime.inspect_agents(job_id)
    assert {a["status"] for a in agents} == {"cancelled"} and all(a["mailbox_depth"] == 0 for a in agents)
    with pytest.raises(JobStateError, match="already in a terminal state"):
        await runtime.control.cancel(job_id)


async def test_send_message_errors_name_the_problem(runtime: Runtime) -> None:
    with pytest.raises(JobNotFound):
        await runtime.control.send_message("ghost-job", "a", {})
    job_id = await runtime.submit(collect(3))
    with pytest.raises(AgentNotFound, match=f"agent nobody is not part of job {job_id}"):
        await runtime.control.send_message(job_id, "nobody", {})
    with pytest.raises(MessageError, match="must be a JSON object"):
        await runtime.control.send_message(job_id, "sink", ["not", "an", "object"])
    await runtime.control.cancel(job_id)
    await runtime.wait(job_id, timeout=10)
    with pytest.raises(JobStateError, match="is not running"):
        await runtime.control.send_message(job_id, "sink", {})


async def test_send_message_accepts_the_envelope_form_and_bypasses_edges(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(collect(2))
    await idle(memory_runtime)
    message = {"envelope": {"type": "manual", "class": "command"}, "body": {"x": 1}, "headers": {"h": "v"}}
    sent = await memory_runtime.control.send_message(job_id, "sink", message)
    assert sent["agent_id"] == "sink" and sent["message_id"]
    job = await memory_runtime.wait(job_id, timeout=10)
    assert job["result"]["output"]["messages"] == [{}, {"x": 1}]
    received = [e for e in await memory_runtime.events(job_id) if e["type"] == "agent_message_received"]
    manual = next(e for e in received if e["payload"]["type"] == "manual")
    assert manual["payload"]["from"] == "operator" and manual["payload"]["class"] == "command"


async def test_a_full_mailbox_rejects_external_messages_with_an_overflow_event(
    memory_runtime: Runtime,
) -> None:
    job_id = await memory_runtime.submit(collect(100, max_queue_size=2))
    await idle(memory_runtime)
    await memory_runtime.control.pause(job_id)
    await memory_runtime.control.send_message(job_id, "sink", {"n": 1})
    await memory_runtime.control.send_message(job_id, "sink", {"n": 2})
    with pytest.raises(MailboxFull, match=r"is full \(2/2 messages\)"):
        await memory_runtime.control.send_message(job_id, "sink", {"n": 3})
    overflow = [e for e in await memory_runtime.events(job_id) if e["type"] == "queue_overflow"]
    assert len(overflow) == 1 and overflow[0]["agent_id"] == "sink"
    assert overflow[0]["payload"]["max_queue_size"] == 2


async def test_internal_emits_apply_backpressure_and_lose_nothing(memory_runtime: Runtime) -> None:
    n = 500
    data = manifest(
        [
            router("entry"),
            router("relay"),
            {
                "node_id": "sink",
                "agent_type": "aggregator",
                "config": {"complete_after": n, "max_queue_size": 8},
            },
        ],
        [("entry", "relay", "init"), ("relay", "sink", "init")],
        initial_inputs={"entry": [{"i": i} for i in range(n)]},
    )
    job_id = await memory_runtime.submit(data)
    job = memory_runtime.jobs[job_id]
    peak = 0
    while not job.terminal:
        peak = max(peak, len(job.cells["sink"].mailbox))
        await asyncio.sleep(0)
    record = await memory_runtime.wait(job_id, timeout=10)
    assert [m["i"] for m in record["result"]["output"]["messages"]] == list(range(n))  # all, in order
    pressure = [e for e in await memory_runtime.events(job_id) if e["type"] == "backpressure"]
    assert pressure and {e["agent_id"] for e in pressure} == {"relay"}
    assert all(e["payload"]["target"] == "sink" for e in pressure)
    assert peak <= 8  # the relay stops as soon as the sink's mailbox reaches its bound


async def test_a_daemon_job_runs_until_cancelled(memory_runtime: Runtime) -> None:
    data = manifest([router("a"), sensor("s")], [("a", "s", "init")], daemon=True)
    job_id = await memory_runtime.submit(data)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(memory_runtime.jobs[job_id].done), 0.2)
    await memory_runtime.control.cancel(job_id)
    assert (await memory_runtime.wait(job_id, timeout=5))["status"] == "cancelled"


async def test_control_reaches_a_job_running_in_another_process(tmp_path: Path) -> None:
    """pause / send / resume / cancel from here reach a job hosted by a separate `mn run`."""
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps(collect(3)))
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mirror_neuron",
        "run",
        "--json",
        str(bundle),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    config = Config.from_env(env, control=False)
    try:
        await _steer_the_other_process(config, proc)
    finally:
        if proc.returncode is None:  # never leave the other runtime behind
            proc.kill()
            await proc.communicate()


async def _steer_the_other_process(config: Config, proc: asyncio.subprocess.Process) -> None:
    async with Runtime(config) as rt:
        job_id = await _first_job(rt)
        await _until(rt, job_id, lambda a: a["sink"]["processed_messages"] == 1)
        assert (await rt.control.pause(job_id))["status"] == "paused"
        assert (await rt.inspect_job(job_id))["status"] == "paused"
        assert (await rt.control.send_message(job_id, "sink", {"origin": "elsewhere"}))[
            "status"
        ] == "enqueued"
        with pytest.raises(AgentNotFound):  # errors come back as the same type
            await rt.control.send_message(job_id, "ghost", {})
        await rt.control.resume(job_id)
        await rt.control.send_message(job_id, "sink", {"last": True})
        job = await rt.wait(job_id, timeout=30)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["result"]["output"]["messages"] == [{}, {"origin": "elsewhere"}, {"last": True}]
    assert job["status"] == "completed"


async def test_cancel_of_a_job_whose_runtime_died_is_forced(memory_runtime: Runtime) -> None:
    store = memory_runtime.store
    store.create_job(
        {
            "job_id": "orphan",
            "status": "running",
            "control": "unix:///nonexistent.sock",
            "submitted_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
        }
    )
    with pytest.raises(JobStateError, match="not running in any live runtime"):
        await memory_runtime.control.pause("orphan")
    assert (await memory_runtime.control.cancel("orphan"))["forced"] is True
    record = store.get_job("orphan")
    assert record["status"] == "cancelled"
    assert record["result"] == {"reason": "forced cancellation of orphaned job"}


async def _first_job(rt: Runtime) -> str:
    """The job the other process recorded (polling its store: there is no event to await here)."""

    async def first() -> str | None:
        jobs = await rt.list_jobs()
        return jobs[0]["job_id"] if jobs else None

    return await eventually_async(first, what="the other process to record its job")


async def _until(rt: Runtime, job_id: str, predicate: Any) -> None:
    async def holds() -> bool:
        agents = {a["agent_id"]: a for a in await rt.inspect_agents(job_id)}
        return bool(agents) and predicate(agents)

    await eventually_async(holds, what=f"the agents of job {job_id} to match")
