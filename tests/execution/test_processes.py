"""Owned processes: timeouts and cancellation kill whole groups, output is capped, nothing leaks."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import pytest

from mirror_neuron.execution import Executor, ExecutorSettings, Invocation
from mirror_neuron.execution.runners import run_owned
from mirror_neuron.messages import normalize
from waiting import eventually_async

from .conftest import alive, processes_with, run_config, staged_leftovers, until_running, wait_gone


def marker() -> str:
    return f"{random.randint(100, 999)}.{random.randint(10**8, 10**9)}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_host_timeout_kills_the_grandchild_too(payloads: Path, temp_root: Path, tmp_path: Path) -> None:
    mark, pidfile = marker(), tmp_path / "grandchild.pid"
    command = f"(sleep {mark} & echo $! > {pidfile}; wait) & sleep {mark}"
    outcome = await run_config(
        {"runner": "host_local", "command": command, "timeout_seconds": 0.3, "kill_grace_seconds": 0.5},
        payloads,
        temp_root,
    )
    assert not outcome.ok
    assert outcome.error == "command timed out after 0.3s and was killed"
    assert "timed out" in outcome.result["logs"]
    grandchild = int(pidfile.read_text())
    assert wait_gone(mark) == []
    assert not alive(grandchild)


async def test_background_processes_do_not_outlive_a_successful_run(payloads: Path, temp_root: Path) -> None:
    mark = marker()
    outcome = await run_config(
        {"runner": "host_local", "command": f"sleep {mark} & echo done"}, payloads, temp_root
    )
    assert outcome.ok and outcome.result["stdout"] == "done\n"
    assert wait_gone(mark) == []


@pytest.mark.usefixtures("sandbox")
async def test_sandbox_timeout_kills_everything_in_the_sandbox(payloads: Path, temp_root: Path) -> None:
    mark = marker()
    command = f"(setsid sleep {mark} &) ; trap '' TERM; sleep {mark}"
    outcome = await run_config({"command": command, "timeout_seconds": 0.3}, payloads, temp_root)
    assert not outcome.ok and "timed out" in (outcome.error or "")
    assert wait_gone(mark) == []


@pytest.mark.parametrize("runner", ["host_local", "sandbox"])
async def test_cancelling_the_run_kills_the_script(
    runner: str, payloads: Path, temp_root: Path, request
) -> None:
    if runner == "sandbox":
        request.getfixturevalue("sandbox")
    mark = marker()
    executor = Executor(
        ExecutorSettings.from_config({"runner": runner, "command": f"sleep {mark} & sleep {mark}"})
    )
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    fds = open_fds()
    task = asyncio.create_task(executor.execute(inv))
    await until_running(mark, count=2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_gone(mark) == []
    await eventually_async(lambda: open_fds() <= fds, what="the run's pipes closed")
    assert staged_leftovers(temp_root) == []


async def test_stop_kills_running_commands(payloads: Path, temp_root: Path) -> None:
    mark = marker()
    executor = Executor(ExecutorSettings.from_config({"runner": "host_local", "command": f"sleep {mark}"}))
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    task = asyncio.create_task(executor.execute(inv))
    await until_running(mark)
    await executor.stop()
    outcome = await task
    assert not outcome.ok
    assert outcome.error == "command was stopped because the executor is shutting down"
    assert processes_with(mark) == []


async def test_sigterm_ignoring_group_gets_sigkill_after_grace(caplog: pytest.LogCaptureFixture) -> None:
    mark = marker()
    # The child ignores SIGTERM; the shell notes it on stdout and goes on waiting for the child.
    script = f"trap '' TERM; sleep {mark} & trap 'echo got TERM' TERM; while :; do wait; done"
    out = await run_owned(
        ["bash", "-c", script],
        env={"PATH": os.environ["PATH"]},
        time_limit=0.2,
        max_output_bytes=1000,
        grace=1.0,
    )
    assert out.timed_out
    assert out.stdout == b"got TERM\n"  # SIGTERM first, and the group outlived it...
    assert out.returncode == 128 + signal.SIGKILL  # ...until SIGKILL, once the grace period was over
    assert "ignored SIGTERM for 1.0s; sending SIGKILL" in caplog.text
    assert wait_gone(mark) == []


@pytest.mark.usefixtures("sandbox")
async def test_output_is_capped_and_flagged(payloads: Path, temp_root: Path) -> None:
    command = (
        'python3 -c \'import sys; sys.stdout.write("o" * 3_000_000); '
        'sys.stderr.write("e" * 3_000_000 + "LAST-LINE")\''
    )
    outcome = await run_config({"command": command, "max_output_bytes": 100_000}, payloads, temp_root)
    assert outcome.ok
    assert outcome.result["stdout"] == "o" * 100_000
    assert len(outcome.result["stderr"]) == 100_000
    assert outcome.result["stderr"].endswith("LAST-LINE")
    assert "stdout exceeded 100000 bytes and was truncated" in outcome.result["logs"]
    assert "stderr exceeded 100000 bytes" in outcome.result["logs"]


async def test_default_output_cap_is_one_mebibyte(payloads: Path, temp_root: Path) -> None:
    command = "head -c 1100000 /dev/zero | tr '\\0' x"
    outcome = await run_config({"runner": "host_local", "command": command}, payloads, temp_root)
    assert len(outcome.result["stdout"]) == 1024 * 1024
