"""The runner seam: one protocol, three implementations (sandbox, host, OpenShell).

A runner receives a fully prepared :class:`RunSpec` (staging directory written, command
text and contract environment built in the runner's own view) and returns a
:class:`RunResult`. Every child it starts is an owned process (:mod:`.process`): its own
process group, stdout and stderr captured separately and capped, killed as a group on
timeout or cancellation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ...policy import Limits
from .process import ProcessOutput, ProcessTracker

RESULT_START = "__MIRROR_NEURON_RESULT_START__"
RESULT_END = "__MIRROR_NEURON_RESULT_END__"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One attempt, ready to start. Paths in ``root``/``workdir``/``env`` are the command's view."""

    name: str
    command: str
    env: Mapping[str, str]
    staging_dir: Path
    root: str
    workdir: str
    sandbox_root: str = "/sandbox/job"
    timeout_seconds: float | None = None
    max_output_bytes: int = 1024 * 1024
    kill_grace_seconds: float = 2.0
    limits: Limits = field(default_factory=Limits)
    network: bool = False
    login_shell: bool = False
    attempt: int = 1
    #: The node config, for runner-specific keys (OpenShell flags).
    options: Mapping[str, Any] = field(default_factory=dict)
    payloads_path: Path | None = None
    tracker: ProcessTracker | None = None


@dataclass(slots=True)
class RunResult:
    """The outcome of one attempt, before redaction and shaping into the contract dict."""

    exit_code: int
    runner_exit_code: int
    stdout: str
    stderr: str
    logs: str = ""
    raw_output: str = ""
    #: The runner's own error (timeout, stop, output truncation is only a note in ``logs``).
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False
    #: Killed by its owner (``Executor.stop``): never retried.
    stopped: bool = False
    duration_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None


class Runner(Protocol):
    """Runs a prepared command somewhere: in a sandbox, on the host, in OpenShell."""

    #: Value of ``sandbox.runner`` in results.
    name: ClassVar[str]

    def root_for(self, staging: Path, sandbox_root: str) -> str:
        """The staging directory as the command will see it."""
        ...

    def prepare(self, staging: Path) -> None:
        """Last step of staging (e.g. build what every run needs once); may run in a worker thread."""
        ...

    async def run(self, spec: RunSpec) -> RunResult:
        """Run the attempt to completion; raises ``SandboxUnavailable`` when it cannot start."""
        ...


def shell_script(spec: RunSpec, *, nproc: bool = True) -> str:
    """The text given to ``bash -c``: resource limits, then the command.

    ``nproc=False`` where a pids cgroup bounds the run: ``RLIMIT_NPROC`` counts every process
    of the user on the host, so one sandbox at its cap would stop every other one forking.
    """
    limits = spec.limits.ulimit_command(nproc=nproc)
    return f"{limits} || exit 126\n{spec.command}" if limits else spec.command


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def marker_block(exit_code: int, stdout: str, stderr: str) -> str:
    """The original wrapper's result block, kept as ``raw_output`` for tools that parse it."""
    from ... import _json

    body = _json.dumps_str({"exit_code": exit_code, "stdout": stdout, "stderr": stderr})
    return f"{RESULT_START}\n{body}\n{RESULT_END}"


def from_process(out: ProcessOutput, spec: RunSpec, notes: list[str] | None = None) -> RunResult:
    """Shape an owned process's output (the command ran directly under our pipes)."""
    stdout, stderr = decode(out.stdout), decode(out.stderr)
    notes = list(notes or [])
    error = None
    if out.timed_out:
        error = f"command timed out after {spec.timeout_seconds:g}s and was killed"
    elif out.stopped:
        error = "command was stopped because the executor is shutting down"
    if error:
        notes.append(error)
    if out.stdout_truncated:
        notes.append(f"stdout exceeded {spec.max_output_bytes} bytes and was truncated")
    if out.stderr_truncated:
        notes.append(f"stderr exceeded {spec.max_output_bytes} bytes; only its end was kept")
    return RunResult(
        exit_code=out.returncode,
        runner_exit_code=out.returncode,
        stdout=stdout,
        stderr=stderr,
        logs="\n".join(notes),
        raw_output=marker_block(out.returncode, stdout, stderr),
        error=error,
        timed_out=out.timed_out,
        truncated=out.stdout_truncated or out.stderr_truncated,
        stopped=out.stopped,
        duration_ms=out.duration_ms,
    )
