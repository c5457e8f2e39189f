"""A job that can no longer progress by itself is reported, and fails only when asked to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from builders import aggregator, manifest, router
from mirror_neuron import JobTimeout, Runtime


def short_of_input(**extra: object) -> dict[str, object]:
    """An aggregator that needs two messages and gets one: the job stalls after it."""
    return manifest(
        [router("ingress"), aggregator("reviewer", complete_after=2)],
        [("ingress", "reviewer", "init")],
        initial_inputs={"ingress": [{"n": 1}]},
        **extra,
    )


async def test_a_stalled_job_says_what_each_waiting_agent_waits_for(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(short_of_input())
    job = memory_runtime.jobs[job_id]
    await job.stall.changed()
    events = [e for e in await memory_runtime.events(job_id) if e["type"] == "job_stalled"]
    assert len(events) == 1
    assert "reviewer: 1 of complete_after=2" in events[0]["reason"]
    record = await memory_runtime.inspect_job(job_id)
    assert record["status"] == "running"
    assert record["stalled"]["waiting"] == [
        {"agent_id": "reviewer", "waiting_for": "1 of complete_after=2 message(s)"}
    ]
    # By default a stall is only reported: the job waits, e.g. for an external message.
    with pytest.raises(JobTimeout):
        await memory_runtime.wait(job_id, timeout=0.2)
    await memory_runtime.control.send_message(job_id, "reviewer", {"type": "init", "body": {"n": 2}})
    done = await memory_runtime.wait(job_id, timeout=10)
    assert done["status"] == "completed"
    assert done["stalled"] is None


async def test_idle_timeout_fails_a_stalled_job_with_the_reason(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(short_of_input())
    done = await memory_runtime.wait(job_id, timeout=30, idle_timeout=0.05)
    assert done["status"] == "failed"
    assert "idle timeout" in done["result"]["error"]
    assert "reviewer: 1 of complete_after=2" in done["result"]["error"]


async def test_a_job_that_keeps_working_never_hits_the_idle_timeout(memory_runtime: Runtime) -> None:
    data = manifest(
        [router("ingress"), aggregator("sink", complete_after=200)],
        [("ingress", "sink", "init")],
        initial_inputs={"ingress": [{"n": i} for i in range(200)]},
    )
    job_id = await memory_runtime.submit(data)
    done = await memory_runtime.wait(job_id, timeout=30, idle_timeout=0.05)
    assert done["status"] == "completed"
    assert not [e for e in await memory_runtime.events(job_id) if e["type"] == "job_stalled"]


async def test_a_daemon_waiting_for_messages_is_not_stalled(memory_runtime: Runtime) -> None:
    job_id = await memory_runtime.submit(short_of_input(daemon=True))
    with pytest.raises(JobTimeout):
        await memory_runtime.wait(job_id, timeout=0.2, idle_timeout=0.05)
    assert (await memory_runtime.inspect_job(job_id))["stalled"] is None
    assert not [e for e in await memory_runtime.events(job_id) if e["type"] == "job_stalled"]


def test_mn_run_idle_timeout_fails_a_stalled_job(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "payloads").mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps(short_of_input()))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mirror_neuron",
            "--store",
            "memory://",
            "run",
            str(bundle),
            "--json",
            "--idle-timeout",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    record = json.loads(run.stdout)
    assert record["status"] == "failed"
    assert "reviewer: 1 of complete_after=2" in record["result"]["error"]
    assert "Traceback" not in run.stderr
