"""Executors inside real jobs: cancellation kills scripts, pools are visible, validation finds problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from builders import aggregator, manifest
from mirror_neuron import Config, ManifestError, Runtime
from mirror_neuron.runtime.remote import live_runtimes
from waiting import eventually_async

SLEEPER = """
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""


def sleeper_bundle(root: Path, runner: str, pid_file: Path) -> Path:
    (root / "payloads" / "work").mkdir(parents=True)
    (root / "payloads" / "work" / "sleep.py").write_text(SLEEPER)
    config: dict[str, Any] = {
        "upload_path": "work",
        "upload_as": "work",
        "workdir": "/sandbox/job/work",
        "command": ["python3", "sleep.py", str(pid_file) if runner == "host_local" else "/sandbox/job/pid"],
        "runner": runner,
    }
    data = manifest(
        [
            {"node_id": "sleeper", "agent_type": "executor", "config": config},
            aggregator("sink", complete_on_message=True),
        ],
        [("sleeper", "sink", "executor_result")],
    )
    (root / "manifest.json").write_text(json.dumps(data))
    return root


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead for our purposes
        return f.read().split(")")[-1].split()[0] != "Z"


async def test_cancelling_a_job_kills_its_running_script_and_leaves_no_orphan(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    bundle = sleeper_bundle(tmp_path / "bundle", "host_local", pid_file)
    async with Runtime(Config(store_url=f"sqlite:///{tmp_path / 'db.sqlite'}")) as rt:
        job_id = await rt.submit(str(bundle))
        await eventually_async(lambda: pid_file.exists() and pid_file.read_text(), what="the script started")
        pid = int(pid_file.read_text())
        assert alive(pid)
        nodes = await live_runtimes()
        mine = next(n for n in nodes if n["control"] == rt.control_endpoint)
        assert mine["executor_pools"]["default"]["in_use"] == 1 and job_id in mine["jobs"]
        await rt.control.cancel(job_id)
        sleeper = rt.jobs[job_id].cells["sleeper"] if job_id in rt.jobs else None
        assert sleeper is None or sleeper.status in ("stopping", "cancelled")
        job = await rt.wait(job_id, timeout=30)
        assert job["status"] == "cancelled" and job["result"] == {"reason": "cancelled by operator"}
        assert not alive(pid)
        agents = {a["agent_id"]: a for a in await rt.inspect_agents(job_id)}
        assert agents["sleeper"]["status"] == "cancelled"
        assert rt.services["leases"].stats()["default"]["in_use"] == 0


async def test_cancelling_kills_a_sandboxed_script_too(tmp_path: Path) -> None:
    bundle = sleeper_bundle(tmp_path / "bundle", "sandbox", tmp_path / "unused")
    async with Runtime(Config(store_url="memory://")) as rt:
        job_id = await rt.submit(str(bundle))
        await eventually_async(_python_children_sleeping, what="the sandboxed script started")
        await rt.control.cancel(job_id)
        assert (await rt.wait(job_id, timeout=30))["status"] == "cancelled"
        await eventually_async(lambda: not _python_children_sleeping(), what="the sandboxed script is gone")


def _python_children_sleeping() -> bool:
    out = subprocess.run(["pgrep", "-f", "sleep.py"], capture_output=True, text=True).stdout.split()
    return any(int(p) != os.getpid() for p in out)


async def test_a_failing_script_fails_the_job_with_a_readable_error(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "payloads").mkdir(parents=True)
    command = ["bash", "-c", "echo starting; echo 'disk quota exceeded' >&2; exit 3"]
    data = manifest([{"node_id": "worker", "agent_type": "executor", "config": {"command": command}}])
    (root / "manifest.json").write_text(json.dumps(data))
    async with Runtime(Config(store_url="memory://")) as rt:
        _, job = await rt.run(str(root), timeout=30)
    assert job["status"] == "failed"
    assert job["result"]["agent_id"] == "worker"
    assert job["result"]["error"].startswith("command exited with status 3")
    assert "disk quota exceeded" in job["result"]["error"]
    assert "Traceback" not in job["result"]["error"]


def test_validate_reports_a_missing_upload_source_and_an_unknown_pool(tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    (root / "payloads").mkdir(parents=True)
    config = {"upload_path": "nowhere", "command": ["python3", "x.py"], "pool": "gpu"}
    (root / "manifest.json").write_text(
        json.dumps(manifest([{"node_id": "prime_worker", "agent_type": "executor", "config": config}]))
    )
    out = subprocess.run(
        [sys.executable, "-m", "mirror_neuron", "validate", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "prime_worker" in out.stderr and "nowhere" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


async def test_an_unknown_pool_is_refused_before_the_job_starts(tmp_path: Path) -> None:
    data = manifest(
        [{"node_id": "w", "agent_type": "executor", "config": {"command": "true", "pool": "gpu"}}]
    )
    async with Runtime(Config(store_url="memory://")) as rt:
        with pytest.raises(ManifestError, match="gpu"):
            await rt.submit(data)
        assert await rt.list_jobs() == []


async def test_a_missing_sandbox_is_reported_before_the_job_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import mirror_neuron.agents as agents
    from mirror_neuron import ExecutionError

    monkeypatch.setattr(agents, "sandbox_available", lambda: (False, "bubblewrap (bwrap) is not installed"))
    data = manifest([{"node_id": "w", "agent_type": "executor", "config": {"command": "true"}}])
    async with Runtime(Config(store_url="memory://")) as rt:
        with pytest.raises(ExecutionError, match=r"executor node\(s\) w need the sandbox.*not installed"):
            await rt.submit(data)
        assert await rt.list_jobs() == []
        trusted = manifest(
            [
                {
                    "node_id": "w",
                    "agent_type": "executor",
                    "config": {"command": "true", "runner": "host_local"},
                }
            ]
        )
        assert await rt.submit(trusted)  # opting into host_local is never blocked by it
