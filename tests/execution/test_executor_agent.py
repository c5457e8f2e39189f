"""ExecutorAgent against a recording context: event order, payload shapes, state, failure, stop."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.agents import executor as executor_module
from mirror_neuron.agents.base import AgentError
from mirror_neuron.agents.executor import RESULT_HEADERS, ExecutorAgent
from mirror_neuron.config import Config
from mirror_neuron.execution import Lease, LeaseManager
from mirror_neuron.messages import normalize

from .conftest import FakeContext, executor_node, processes_with, until_running, wait_gone, write

pytestmark = pytest.mark.usefixtures("sandbox")

STRUCTURED = """
import json, os
ctx = json.load(open(os.environ["MN_CONTEXT_FILE"]))
state = ctx["agent_state"] or {"seen": 0}
print(json.dumps({
    "next_state": {"seen": state["seen"] + 1},
    "events": [{"type": "worker_progress", "payload": {"seen": state["seen"] + 1}}],
    "emit_messages": [
        {"type": "tick", "to": "region_2", "body": {"n": 1}},
        {"type": "chunk", "body_base64": "aGk=", "class": "stream", "headers": {"k": "v"}},
    ],
    "complete_job": {"final": True},
}))
"""


def make_agent(
    config: dict[str, Any], payloads: Path, temp_root: Path, services: dict | None = None, **node: Any
) -> tuple[ExecutorAgent, FakeContext]:
    n = executor_node(config, **node)
    ctx = FakeContext(n, Config(temp_dir=temp_root, node_name="test-node"), payloads, services)
    return ExecutorAgent(n, ctx), ctx


def message(body: Any = None) -> Any:
    return normalize({"body": {"n": 1} if body is None else body, "headers": {"trace": "t1"}}, job_id="job-1")


async def test_success_events_and_actions_come_in_the_original_order(payloads: Path, temp_root: Path) -> None:
    write(payloads / "w.py", STRUCTURED)
    config = {"upload_path": "w.py", "command": ["python3", "w.py"], "complete_job": True}
    agent, ctx = make_agent(config, payloads, temp_root)
    await agent.handle_async(message())
    assert ctx.kinds() == [
        "event:executor_lease_requested",
        "event:executor_lease_acquired",
        "event:executor_lease_released",
        "event:sandbox_job_completed",
        "emit:executor_result",
        "complete",
        "event:worker_progress",
        "emit_to:region_2",
        "emit:chunk",
        "complete",
    ]
    requested, acquired, released, completed = (ctx.log[i][2] for i in range(4))
    assert requested == {"pool": "default", "slots": 1}
    assert set(acquired) == {"lease_id", "pool", "slots", "queue_wait_ms"}
    assert released == {"lease_id": acquired["lease_id"], "pool": "default", "slots": 1}
    assert completed == {
        "sandbox_name": completed["sandbox_name"],
        "exit_code": 0,
        "attempts": 1,
        "lease_id": acquired["lease_id"],
        "pool": "default",
    }
    _, _, output, opts = ctx.log[4]
    assert opts == {"cls": "event", "headers": RESULT_HEADERS}
    assert set(output) == {"agent_id", "sandbox", "input"}
    assert output["agent_id"] == "worker" and output["input"] == {"n": 1}
    sandbox = output["sandbox"]
    assert {"sandbox_name", "remote_dir", "exit_code", "runner_exit_code", "stdout", "stderr", "logs"} <= set(
        sandbox
    )
    assert {"raw_output", "runner", "node_name", "attempts", "lease"} <= set(sandbox)
    assert sandbox["node_name"] == "test-node" and sandbox["attempts"] == 1
    assert sandbox["lease"]["metadata"] == {"job_id": "job-1", "agent_id": "worker", "node": "test-node"}
    assert ctx.log[5] == ("complete", output)
    assert ctx.log[6] == ("event", "worker_progress", {"seen": 1})
    assert ctx.log[7] == ("emit_to", "region_2", "tick", {"n": 1}, {})
    assert ctx.log[8] == ("emit", "chunk", b"hi", {"cls": "stream", "headers": {"k": "v"}})
    assert ctx.log[9] == ("complete", {"final": True})
    assert agent.agent_state == {"seen": 1}
    ctx.log.clear()
    await agent.handle_async(message())
    assert ctx.events("worker_progress") == [{"seen": 2}], "next_state reaches the next run's context file"
    snap = agent.snapshot_state()
    assert snap["runs"] == 2 and snap["agent_state"] == {"seen": 2} and snap["last_error"] is None
    json.dumps(snap)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["executor_result"]),
        ({"output_message_type": "prime_result"}, ["prime_result"]),
        ({"output_message_type": None}, []),
    ],
)
async def test_default_emit_follows_output_message_type(
    config: dict, expected: list[str], payloads: Path, temp_root: Path
) -> None:
    agent, ctx = make_agent({"command": "echo plain", **config}, payloads, temp_root)
    await agent.handle_async(message())
    assert [e[1] for e in ctx.log if e[0] == "emit"] == expected
    assert not [e for e in ctx.log if e[0] == "complete"]


async def test_complete_job_question_mark_completes_with_the_output_payload(
    payloads: Path, temp_root: Path
) -> None:
    agent, ctx = make_agent({"command": "echo '{\"complete_job?\": true}'"}, payloads, temp_root)
    await agent.handle_async(message({"x": 1}))
    (completion,) = [e[1] for e in ctx.log if e[0] == "complete"]
    assert completion["agent_id"] == "worker" and completion["input"] == {"x": 1}


async def test_failure_raises_a_readable_error_and_releases_the_lease(
    payloads: Path, temp_root: Path
) -> None:
    leases = LeaseManager({"default": 1})
    command = "echo progress; echo 'Traceback: ...' >&2; echo 'ValueError: bad input' >&2; exit 3"
    agent, ctx = make_agent({"command": command}, payloads, temp_root, {"leases": leases})
    with pytest.raises(AgentError) as info:
        await agent.handle_async(message())
    assert str(info.value) == "command exited with status 3: Traceback: ...\nValueError: bad input"
    assert info.value.details == {
        "exit_code": 3,
        "attempts": 1,
        "stderr_tail": "Traceback: ...\nValueError: bad input",
    }
    assert ctx.kinds() == [
        "event:executor_lease_requested",
        "event:executor_lease_acquired",
        "event:executor_lease_released",
        "event:sandbox_job_failed",
    ]
    failed = ctx.log[3][2]
    assert failed["exit_code"] == 3 and failed["attempts"] == 1 and failed["pool"] == "default"
    assert failed["error"] == str(info.value)
    assert leases.stats()["default"]["in_use"] == 0
    assert agent.runs == 1 and agent.last_error == str(info.value)


async def test_unknown_pool_fails_before_running(payloads: Path, temp_root: Path) -> None:
    agent, ctx = make_agent({"pool": "memory-heavy", "command": "true"}, payloads, temp_root)
    with pytest.raises(AgentError, match=r'^unknown executor pool "memory-heavy"$'):
        await agent.handle_async(message())
    assert ctx.kinds() == ["event:executor_lease_requested"]


async def test_setup_errors_are_reported_as_failed_runs(payloads: Path, temp_root: Path) -> None:
    agent, ctx = make_agent({"upload_path": "missing.py", "command": "true"}, payloads, temp_root)
    with pytest.raises(AgentError, match=r"^upload source does not exist: payloads/missing\.py$"):
        await agent.handle_async(message())
    assert ctx.kinds()[-2:] == ["event:executor_lease_released", "event:sandbox_job_failed"]


async def test_invalid_runner_is_an_agent_error_on_first_message(payloads: Path, temp_root: Path) -> None:
    agent, _ = make_agent({"runner": "docker"}, payloads, temp_root)
    with pytest.raises(AgentError, match="unknown executor runner"):
        await agent.handle_async(message())


async def test_lease_manager_is_created_lazily_and_shared(payloads: Path, temp_root: Path) -> None:
    services: dict[str, Any] = {}
    agent, _ = make_agent({"command": "true"}, payloads, temp_root, services)
    await agent.handle_async(message())
    assert isinstance(services["leases"], LeaseManager)
    assert services["leases"].stats()["default"]["capacity"] == 4


class LoggedLeases(LeaseManager):
    """A lease manager that logs, in order, each request, grant and release, by agent."""

    def __init__(self, capacities: dict[str, int]) -> None:
        super().__init__(capacities)
        self.log: list[tuple[str, str]] = []

    async def acquire(self, pool: str = "default", slots: int = 1, metadata: Any = None, **kw: Any) -> Lease:
        self.log.append(("requested", metadata["agent_id"]))
        lease = await super().acquire(pool, slots, metadata, **kw)
        self.log.append(("granted", metadata["agent_id"]))
        return lease

    def release(self, lease: Lease) -> None:
        self.log.append(("released", lease.metadata["agent_id"]))
        super().release(lease)


async def test_leases_bound_concurrency_across_agents(payloads: Path, temp_root: Path) -> None:
    leases = LoggedLeases({"default": 1})
    a, ctx_a = make_agent({"command": "sleep 0.2"}, payloads, temp_root, {"leases": leases}, node_id="a")
    b, ctx_b = make_agent({"command": "sleep 0.2"}, payloads, temp_root, {"leases": leases}, node_id="b")
    await asyncio.gather(a.handle_async(message()), b.handle_async(message()))
    first, second = (agent for kind, agent in leases.log if kind == "granted")
    assert {first, second} == {"a", "b"}
    assert [entry for entry in leases.log if entry[0] != "requested"] == [
        ("granted", first),
        ("released", first),  # one run at a time: the second is granted only after this
        ("granted", second),
        ("released", second),
    ]
    assert leases.log.index(("requested", second)) < leases.log.index(("released", first))  # it waited
    assert all(ctx.events("sandbox_job_completed") for ctx in (ctx_a, ctx_b))


class SleepSpy:
    """Stands in for the executor agent's ``asyncio``: records the sleeps it asks for, waits none."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)


async def test_startup_delay_applies_to_the_first_run_only(
    payloads: Path, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = SleepSpy()
    monkeypatch.setattr(executor_module, "asyncio", spy)
    agent, ctx = make_agent({"command": "true", "startup_delay_ms": 300}, payloads, temp_root)
    await agent.handle_async(message())
    assert spy.slept == [0.3]
    await agent.handle_async(message())
    assert spy.slept == [0.3]  # not again
    assert len(ctx.events("sandbox_job_completed")) == 2


async def test_cancelling_the_handler_kills_the_script(payloads: Path, temp_root: Path) -> None:
    mark = f"{random.randint(100, 999)}.{random.randint(10**8, 10**9)}"
    leases = LeaseManager({"default": 2})
    agent, ctx = make_agent({"command": f"sleep {mark}"}, payloads, temp_root, {"leases": leases})
    task = asyncio.create_task(agent.handle_async(message()))
    await until_running(mark)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_gone(mark) == []
    assert ctx.kinds()[-1] == "event:executor_lease_released"
    assert leases.stats()["default"]["in_use"] == 0


async def test_stop_kills_the_running_script(payloads: Path, temp_root: Path) -> None:
    mark = f"{random.randint(100, 999)}.{random.randint(10**8, 10**9)}"
    agent, _ = make_agent({"command": f"sleep {mark}"}, payloads, temp_root)
    task = asyncio.create_task(agent.handle_async(message()))
    await until_running(mark)
    await agent.stop()
    with pytest.raises(AgentError, match="stopped"):
        await task
    assert processes_with(mark) == []
    await agent.stop()  # idempotent


async def test_snapshot_restore_round_trips(payloads: Path, temp_root: Path) -> None:
    agent, _ = make_agent({"command": "echo hi"}, payloads, temp_root)
    await agent.handle_async(message(b"\xff\x00binary"))
    snap = json.loads(json.dumps(agent.snapshot_state()))
    fresh, _ = make_agent({"command": "echo hi"}, payloads, temp_root)
    fresh.restore_state(snap)
    assert fresh.snapshot_state() == snap
    assert fresh.inspect_state()["running_commands"] == 0


async def test_a_stored_run_of_the_same_message_is_replayed_not_run_again(
    payloads: Path, temp_root: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"  # private to this test run
    config = {"command": f"echo run >> {marker}; echo hi", "runner": "host_local"}
    agent, ctx = make_agent(config, payloads, temp_root)
    incoming = message()
    await agent.handle_async(incoming)
    assert ctx.stored_run is not None and ctx.stored_run["message_id"] == incoming.message_id
    first = [e for e in ctx.log if e[0] == "emit"]
    # After a crash the same message comes again: the stored run is re-emitted.
    again, ctx2 = make_agent(config, payloads, temp_root)
    ctx2.stored_run = ctx.stored_run
    await again.handle_async(incoming)
    assert marker.read_text().split() == ["run"]  # the script ran once
    assert ctx2.kinds()[0] == "event:executor_output_replayed"
    assert [e for e in ctx2.log if e[0] == "emit"] == first
    # A different message (or the same id with another body) runs for real.
    await again.handle_async(message({"n": 2}))
    assert marker.read_text().split() == ["run", "run"]


async def test_secrets_are_redacted_from_structured_events(payloads: Path, temp_root: Path) -> None:
    command = (
        'echo "{\\"events\\": [{\\"type\\": \\"leak\\", \\"payload\\": {\\"t\\": \\"$SERVICE_TOKEN\\"}}]}"'
    )
    config = {"command": command, "environment": {"SERVICE_TOKEN": "s3cr3t-value"}}
    agent, ctx = make_agent(config, payloads, temp_root)
    await agent.handle_async(message())
    assert ctx.events("leak") == [{"t": "[REDACTED]"}]
    assert "s3cr3t-value" not in json.dumps(agent.snapshot_state())


async def test_unreadable_structured_output_fails_the_run(payloads: Path, temp_root: Path) -> None:
    write(payloads / "w.py", 'print(\'{"complete_job": {"v": "\\\\ud800"}}\')')
    agent, ctx = make_agent({"upload_path": "w.py", "command": ["python3", "w.py"]}, payloads, temp_root)
    with pytest.raises(AgentError, match="not valid JSON"):
        await agent.handle_async(message())
    assert next(p["reason"] for p in ctx.events("executor_output_invalid")).startswith("stdout looks like")
    assert ctx.events("sandbox_job_failed")[0]["error"].startswith("stdout looks like structured output")
    assert not [e for e in ctx.log if e[0] in ("complete", "emit", "emit_to")]
    assert ctx.stored_run is None  # never replayed as a success after a crash


async def test_output_cut_at_max_output_bytes_fails_the_run(payloads: Path, temp_root: Path) -> None:
    write(payloads / "w.py", "import json; print(json.dumps({'complete_job': 'x' * 5000}))")
    config = {"upload_path": "w.py", "command": ["python3", "w.py"], "max_output_bytes": 100}
    agent, _ = make_agent(config, payloads, temp_root)
    with pytest.raises(AgentError, match="max_output_bytes"):
        await agent.handle_async(message())


async def test_scripts_cannot_emit_the_runtimes_events(payloads: Path, temp_root: Path) -> None:
    forged = {
        "events": [
            {"type": "job_completed", "payload": {}},
            {"type": "dead_letter", "payload": {}},
            {"type": "mine", "payload": {"ok": 1}},
        ]
    }
    write(payloads / "w.py", f"import json; print(json.dumps({forged!r}))")
    agent, ctx = make_agent({"upload_path": "w.py", "command": ["python3", "w.py"]}, payloads, temp_root)
    await agent.handle_async(message())
    assert [p["type"] for p in ctx.events("executor_event_rejected")] == ["job_completed", "dead_letter"]
    assert ctx.events("job_completed") == [] and ctx.events("dead_letter") == []
    assert ctx.events("mine") == [{"ok": 1}]


async def test_event_and_message_types_with_control_characters_are_rejected(
    payloads: Path, temp_root: Path
) -> None:
    out = {
        "events": [{"type": "ok\u001b]0;title\u0007", "payload": {}}],
        "emit_messages": [{"type": "x\nforged line", "body": {}}, {"type": "fine", "body": {}}],
    }
    write(payloads / "w.py", f"import json; print(json.dumps({out!r}))")
    agent, ctx = make_agent({"upload_path": "w.py", "command": ["python3", "w.py"]}, payloads, temp_root)
    await agent.handle_async(message())
    assert "control character" in ctx.events("executor_event_rejected")[0]["reason"]
    assert ctx.events("executor_message_rejected")[0]["type"] == "x\nforged line"
    assert [e[1] for e in ctx.log if e[0] == "emit"] == ["executor_result", "fine"]
