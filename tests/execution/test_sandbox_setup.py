"""Setup between bwrap's start and the command's (``on_started``, setup steps): a failure leaves
nothing running, cleanups run once the sandbox is empty."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from mirror_neuron.execution import Executor, ExecutorSettings, Invocation, Outcome
from mirror_neuron.execution.runners import BwrapRunner, run_owned
from mirror_neuron.execution.runners.bwrap import Cleanup, Prepared, SetupStep
from mirror_neuron.execution.runners.cgroups import cgroup_support
from mirror_neuron.messages import normalize

from .conftest import processes_with, wait_gone


def marker() -> str:
    return f"{random.randint(100, 999)}.{random.randint(10**8, 10**9)}"


async def test_a_failing_start_hook_kills_the_group_and_propagates() -> None:
    mark = marker()

    async def fail(popen: subprocess.Popen[bytes]) -> None:
        assert processes_with(mark)  # it runs while the child does
        raise RuntimeError("setup failed")

    with pytest.raises(RuntimeError, match="setup failed"):
        await run_owned(
            ["sh", "-c", f"sleep {mark} & sleep {mark}"],
            env={"PATH": "/usr/bin:/bin"},
            max_output_bytes=1000,
            grace=5.0,
            on_started=fail,
        )
    assert wait_gone(mark) == []


class StepRunner(BwrapRunner):
    """The sandbox runner with one more setup step (as a network namespace would be attached)."""

    def __init__(self, step: SetupStep) -> None:
        super().__init__()
        self.step = step

    def setup_steps(self, prepared: Prepared, network: bool = False) -> list[SetupStep]:
        return [*super().setup_steps(prepared, network), self.step]


async def execute(runner: BwrapRunner, command: str, payloads: Path, temp_root: Path) -> Outcome:
    executor = Executor(ExecutorSettings.from_config({"command": command}), runner=runner)
    inv = Invocation(
        job_id="j", agent_id="w", message=normalize({}), payloads_path=payloads, temp_dir=temp_root
    )
    return await executor.execute(inv)


def leftover_cgroups() -> list[Path]:
    support = cgroup_support()
    return [] if support is None else [c for p in support.parents for c in p.iterdir() if c.is_dir()]


@pytest.mark.usefixtures("sandbox")
async def test_a_failing_setup_step_never_lets_the_command_run(payloads: Path, temp_root: Path) -> None:
    mark = marker()
    seen: list[int] = []

    async def fail(pid: int) -> None:
        seen.append(pid)
        raise RuntimeError("could not attach the network")

    with pytest.raises(RuntimeError, match="could not attach the network"):
        await execute(StepRunner(fail), f"x=mn-held; exec -a $x-{mark} sleep 30", payloads, temp_root)
    assert seen and seen[0] > 0
    assert wait_gone(mark) == []
    assert leftover_cgroups() == []


@pytest.mark.usefixtures("sandbox")
async def test_step_cleanups_run_once_the_sandbox_is_empty(payloads: Path, temp_root: Path) -> None:
    mark = marker()
    during_cleanup: list[list[int]] = []

    async def step(pid: int) -> Cleanup:
        async def cleanup() -> None:
            during_cleanup.append(processes_with(mark))

        return cleanup

    outcome = await execute(StepRunner(step), f"sleep {mark} & echo started", payloads, temp_root)
    assert outcome.ok, outcome.error
    assert during_cleanup == [[]]
