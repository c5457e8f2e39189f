"""Durability: a job survives kill -9 of its runtime, and crashed agents restart per recovery_mode."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest, router
from mirror_neuron import Config, JobStateError, Runtime
from mirror_neuron.agents import BUILTINS, RouterAgent
from mirror_neuron.store import SQLiteStore, WriteBatch
from waiting import eventually

ITEMS = 12

WORKER = """
import json, os, time
body = json.load(open(os.environ["MIRROR_NEURON_INPUT_FILE"]))
with open(os.environ["LEDGER"], "a") as ledger:
    ledger.write(f"{body['item']}\\n")
time.sleep(0.15)
print(json.dumps({"item": body["item"], "square": body["item"] ** 2}))
"""


def ledger_bundle(root: Path, ledger: Path) -> Path:
    (root / "payloads" / "worker").mkdir(parents=True)
    (root / "payloads" / "worker" / "work.py").write_text(WORKER)
    worker = {
        "node_id": "worker",
        "agent_type": "executor",
        "config": {
            "runner": "host_local",
            "upload_path": "worker",
            "upload_as": "worker",
            "workdir": "/sandbox/job/worker",
            "command": [sys.executable, "work.py"],
            "environment": {"LEDGER": str(ledger)},
        },
    }
    data = manifest(
        [router("entry"), worker, aggregator("sink", complete_after=ITEMS)],
        [("entry", "worker", "init"), ("worker", "sink", "executor_result")],
        initial_inputs={"entry": [{"item": i} for i in range(ITEMS)]},
    )
    (root / "manifest.json").write_text(json.dumps(data))
    return root


def mn(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mirror_neuron", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def ledger_lines(ledger: Path) -> list[int]:
    return [int(x) for x in ledger.read_text().split()] if ledger.exists() else []


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of `mn` processes sharing one store: SQLite in a data dir, or Redis."""
    env = {**os.environ, "MIRROR_NEURON_DATA_DIR": str(tmp_path / "data")}
    env.pop("MIRROR_NEURON_STORE_URL", None)
    env.pop("MIRROR_NEURON_REDIS_URL", None)
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        env["MIRROR_NEURON_REDIS_URL"] = server.url
        env["MIRROR_NEURON_REDIS_NAMESPACE"] = f"mn_kill_{os.getpid()}_{tmp_path.name}"
    return env


@pytest.mark.slow
def test_kill_9_mid_job_then_recover_gives_the_uninterrupted_result_with_nothing_counted_twice(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    """Invariant: after kill -9 and `mn job recover`, the result equals an uninterrupted run's."""
    ledger = tmp_path / "ledger"
    bundle = ledger_bundle(tmp_path / "bundle", ledger)
    env = store_env
    victim = mn(["run", "--json", str(bundle)], env, start_new_session=True)

    def four_runs_started() -> bool:  # an external process: polled
        assert victim.poll() is None, victim.communicate()
        return len(ledger_lines(ledger)) >= 4

    eventually(four_runs_started, interval=0.05, what="four items to start before the kill")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    runs_before = len(ledger_lines(ledger))
    assert runs_before < ITEMS  # it really died mid-job

    jobs = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mirror_neuron", "job", "list", "--json"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert [j["status"] for j in jobs] == ["running"]
    job_id = jobs[0]["job_id"]

    out, err = mn(["job", "recover", "--json", job_id], env).communicate(timeout=120)
    record = json.loads(out)
    assert record["status"] == "completed", err
    messages = record["result"]["output"]["messages"]
    assert record["result"]["output"]["count"] == ITEMS
    assert sorted(json.loads(m["sandbox"]["stdout"])["item"] for m in messages) == list(range(ITEMS))
    runs = ledger_lines(ledger)
    assert sorted(set(runs)) == list(range(ITEMS))  # every item ran
    assert len(runs) <= ITEMS + 1  # at most the one in flight at the kill ran twice

    events = json.loads(
        subprocess.run(
            [sys.executable, "-m", "mirror_neuron", "job", "events", job_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no gap, no repeat
    assert sum(e["type"] == "job_recovery_started" for e in events) == 1
    assert [e["payload"]["count"] for e in events if e["type"] == "aggregator_received"] == list(
        range(1, ITEMS + 1)
    )


async def test_recovering_a_job_that_is_still_running_is_refused(tmp_path: Path) -> None:
    data = manifest([router("a"), aggregator("sink", complete_after=3)], [("a", "sink", "init")])
    async with Runtime(Config(store_url=f"sqlite:///{tmp_path / 'db.sqlite'}")) as rt:
        job_id = await rt.submit(data)
        await rt.writer.flush()
        async with Runtime(Config(store_url=f"sqlite:///{tmp_path / 'db.sqlite'}", control=False)) as other:
            with pytest.raises(JobStateError, match="still running"):
                await other.control.recover(job_id)


async def test_a_corrupt_snapshot_fails_the_job_loudly_and_keeps_the_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    data = manifest([router("a"), aggregator("sink", complete_after=3)], [("a", "sink", "init")])
    rt = Runtime(Config(store_url=url, control=False))
    await rt.start()
    job_id = await rt.submit(data)
    await rt.writer.flush()
    rt.jobs.pop(job_id)  # the runtime "dies" without ending the job
    await rt.close()
    store = SQLiteStore(tmp_path / "db.sqlite")
    snaps = {s["agent_id"]: s for s in store.get_agents(job_id)}
    store.write_batch(WriteBatch(agents={job_id: [{**snaps["sink"], "recovery_state": "garbage"}]}))
    store.close()
    async with Runtime(Config(store_url=url, control=False)) as again:
        await again.control.recover(job_id)
        job = await again.wait(job_id, timeout=10)
        assert job["status"] == "failed"
        assert "cannot restore agent sink from its snapshot" in job["result"]["error"]
        kept = {s["agent_id"]: s for s in again.store.get_agents(job_id)}
        assert kept["sink"]["recovery_state"] == "garbage"


class FlakyRouter(RouterAgent):
    """Crashes (a plain exception, not a reported failure) on its first ``crashes`` messages."""

    crashes = 0

    def handle(self, message: Any) -> None:
        if FlakyRouter.crashes > 0:
            FlakyRouter.crashes -= 1
            raise RuntimeError("segfault-ish")
        super().handle(message)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[FlakyRouter]:
    monkeypatch.setitem(BUILTINS, "router", FlakyRouter)
    return FlakyRouter


def flaky_job(**policies: Any) -> dict[str, Any]:
    return manifest(
        [router("a"), aggregator("sink", complete_after=1)], [("a", "sink", "init")], policies=policies
    )


async def test_local_restart_restarts_a_crashed_agent_in_place(
    memory_runtime: Runtime, flaky: type[FlakyRouter]
) -> None:
    flaky.crashes = 2
    job_id, job = await memory_runtime.run(flaky_job(max_agent_restart_attempts=3), timeout=10)
    assert job["status"] == "completed" and job["result"]["output"]["count"] == 1
    events = await memory_runtime.events(job_id)
    assert [e["attempt"] for e in events if e["type"] == "agent_recovery_started"] == [1, 2]
    assert [e["attempt"] for e in events if e["type"] == "agent_recovered"] == [1, 2]


async def test_local_restart_gives_up_after_the_configured_attempts(
    memory_runtime: Runtime, flaky: type[FlakyRouter]
) -> None:
    flaky.crashes = 5
    _, job = await memory_runtime.run(flaky_job(max_agent_restart_attempts=2), timeout=10)
    assert job["status"] == "failed"
    assert job["result"]["error"] == "agent a exceeded restart attempts (2): segfault-ish"


async def test_manual_recover_pauses_the_job_for_an_operator(
    memory_runtime: Runtime, flaky: type[FlakyRouter]
) -> None:
    flaky.crashes = 1
    job_id = await memory_runtime.submit(flaky_job(recovery_mode="manual_recover"))
    job = memory_runtime.jobs[job_id]
    async with contextlib.aclosing(memory_runtime.follow(job_id)) as events:
        async for event in events:
            if event["type"] == "job_paused":
                break
    assert job.status == "paused"
    assert job.cells["a"].last_error == "segfault-ish"
    await memory_runtime.control.resume(job_id)
    assert (await memory_runtime.wait(job_id, timeout=10))["status"] == "completed"


@pytest.mark.slow
async def test_a_redis_restart_mid_job_does_not_stop_the_job(tmp_path: Path) -> None:
    """Invariant: a job rides through its Redis server being killed and restarted."""
    from redis_server import RedisServer

    ledger = tmp_path / "ledger"
    bundle = ledger_bundle(tmp_path / "bundle", ledger)
    with RedisServer(durable=True) as server:
        async with Runtime(Config(store_url=server.url)) as rt:
            job_id = await rt.submit(str(bundle))
            async with contextlib.aclosing(rt.follow(job_id)) as stream:
                done = 0
                async for event in stream:
                    done += event["type"] == "sandbox_job_completed"
                    if done == 3:
                        break
            server.restart()
            job = await rt.wait(job_id, timeout=60)
            assert job["status"] == "completed"
            assert job["result"]["output"]["count"] == ITEMS
            events = await rt.events(job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["payload"]["count"] for e in events if e["type"] == "aggregator_received"] == list(
        range(1, ITEMS + 1)
    )
