"""Fixtures for executor tests: real bubblewrap, real processes, a fake agent context.

Sandbox tests need bwrap. On a laptop without it they are skipped; in CI (``CI=true``)
they fail, so a missing package can never turn the security tests green by skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mirror_neuron.bundle.model import Node
from mirror_neuron.config import Config
from mirror_neuron.execution import Executor, ExecutorSettings, Invocation, Outcome, sandbox_available
from mirror_neuron.messages import Message, normalize
from waiting import eventually, eventually_async

PY = sys.executable  # fast interpreter for host_local scripts (the sandbox uses /usr/bin/python3)


@pytest.fixture
def sandbox() -> None:
    """Require a working bubblewrap sandbox: fail in CI, skip elsewhere."""
    ok, why = sandbox_available()
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the sandbox tests: {why}")
    pytest.skip(why)


@pytest.fixture
def temp_root() -> Iterator[Path]:
    """A private temp dir (0700): the sandbox user never needs to reach it."""
    path = Path(tempfile.mkdtemp(prefix="mn-exec-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def payloads(tmp_path: Path) -> Path:
    path = tmp_path / "bundle" / "payloads"
    path.mkdir(parents=True)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def run_config(
    config: dict[str, Any],
    payloads: Path,
    temp_root: Path,
    body: Any = None,
    message: Message | None = None,
    **inv: Any,
) -> Outcome:
    """Run one invocation of an executor node config and return its outcome."""
    executor = Executor(ExecutorSettings.from_config(config))
    msg = message or normalize({"body": {"n": 1} if body is None else body}, job_id="job-1", to="worker")
    invocation = Invocation(
        job_id="job-1", agent_id="worker", message=msg, payloads_path=payloads, temp_dir=temp_root, **inv
    )
    return await executor.execute(invocation)


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains ``marker`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry))
    return found


def wait_gone(marker: str, timeout: float = 10.0) -> list[int]:
    """``[]`` once no live process has ``marker`` in its command line (else AssertionError)."""
    eventually(lambda: not processes_with(marker), timeout=timeout, what=f"no process with {marker!r} left")
    return []


def staged_leftovers(temp_root: Path) -> list[str]:
    """What runs left in a temp dir besides this process's run dir and its /etc copy."""
    found = []
    for name in os.listdir(temp_root):
        path = temp_root / name
        if name.startswith("run-") and path.is_dir():
            found += [f"{name}/{n}" for n in os.listdir(path) if not n.startswith(".sandbox-etc")]
        else:
            found.append(name)
    return found


def read(path: str | Path) -> str:
    return Path(path).read_text()


def exists(path: str | Path) -> bool:
    return os.path.lexists(path)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def until_running(marker: str, count: int = 1) -> None:
    """Wait until ``count`` processes with ``marker`` run (polling: they are real processes)."""
    await eventually_async(
        lambda: len(processes_with(marker)) >= count,
        timeout=10,
        interval=0.01,
        what=f"{count} process(es) with {marker!r} running",
    )


def executor_node(config: dict[str, Any], node_id: str = "worker", agent_type: str = "executor") -> Node:
    return Node(node_id=node_id, agent_type=agent_type, kind="executor", type="generic", config=config)


class FakeContext:
    """Records what an agent asks of the runtime, in order."""

    def __init__(self, node: Node, config: Config, payloads_path: Path, services: dict | None = None) -> None:
        self.job_id = "job-1"
        self.agent_id = node.node_id
        self.node = node
        self.config = config
        self.bundle_root = payloads_path.parent
        self.payloads_path = payloads_path
        self.invocation = 1
        self.services: dict[str, Any] = {} if services is None else services
        self.log: list[tuple] = []
        #: The executor's stored run (what the runtime keeps for recovery).
        self.stored_run: dict[str, Any] | None = None

    def emit(self, type: str, body: Any, incoming: Message | None, **opts: Any) -> int:
        self.log.append(("emit", type, body, opts))
        return 1

    def emit_to(self, node_id: str, type: str, body: Any, incoming: Message | None, **opts: Any) -> None:
        self.log.append(("emit_to", node_id, type, body, opts))

    def event(self, type: str, payload: Any = None) -> None:
        self.log.append(("event", type, payload))

    def complete_job(self, result: Any) -> None:
        self.log.append(("complete", result))

    async def save_run(self, run: dict[str, Any]) -> None:
        self.stored_run = run

    async def saved_run(self) -> dict[str, Any] | None:
        return self.stored_run

    def kinds(self) -> list[str]:
        """``event:<type>``, ``emit:<type>``, ``emit_to:<node>``, ``complete`` in order."""
        return [f"{e[0]}:{e[1]}" if e[0] != "complete" else "complete" for e in self.log]

    def events(self, type: str) -> list[Any]:
        return [e[2] for e in self.log if e[0] == "event" and e[1] == type]
