"""One executor invocation: stage, run, shape the result; retried on transient failures.

This is the whole pipeline behind an executor node minus the agent concerns (leases,
events, emits), so it can be called and tested without a runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import stat
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..messages import Message
from ..policy import ExecutionPolicy
from . import contract
from .errors import RunnerError, StagingError
from .result import failure_message, redact_run, result_dict, secret_values, tail
from .retry import backoff_seconds, is_transient
from .runners import ProcessTracker, Runner, RunResult, RunSpec, runner_for
from .settings import ExecutorSettings
from .staging import (
    StagingBudget,
    create_staging_dir,
    default_temp_dir,
    plan_uploads,
    remove_staging,
    stage_uploads,
)


@dataclass(slots=True)
class Invocation:
    """Who runs what: the message and everything the contract files describe."""

    job_id: str
    agent_id: str
    message: Message
    agent_type: str = "executor"
    template_type: str | None = "generic"
    agent_state: Any = None
    payloads_path: Path | None = None
    temp_dir: Path = field(default_factory=default_temp_dir)
    node_name: str = "local"
    invocation: int = 1
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


@dataclass(slots=True)
class Outcome:
    """The final result after retries. ``result`` is the contract dict (redacted)."""

    ok: bool
    result: dict[str, Any]
    attempts: int
    run: RunResult
    secrets: tuple[str, ...] = ()
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


SMALL_UPLOADS_BYTES = 256 * 1024
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def sandbox_name(prefix: str, job_id: str, agent_id: str, invocation: int, attempt: int) -> str:
    """``<prefix>-<job>-<agent>`` sanitised, ``-<10 hex>-i<n>-a<n>``, at most 63 characters."""
    base = _UNSAFE.sub("-", f"{prefix}-{job_id}-{agent_id}".lower()).strip("-")
    digest = hashlib.sha256(f"{prefix}:{job_id}:{agent_id}:{invocation}".encode()).hexdigest()[:10]
    suffix = f"-{digest}-i{invocation}-a{attempt}"
    return base[: 63 - len(suffix)].rstrip("-") + suffix


class Executor:
    """Runs invocations for one node; holds the parsed settings, runner and process tracker."""

    def __init__(
        self, settings: ExecutorSettings, runner: Runner | None = None, policy: ExecutionPolicy | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy or ExecutionPolicy()
        _check_policy(settings, self.policy)
        self.runner = runner or runner_for(settings.runner, self.policy)
        self.tracker = ProcessTracker()
        self.stopping = False
        self.uploads = plan_uploads(settings.raw, settings.sandbox_root)

    async def execute(
        self, inv: Invocation, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    ) -> Outcome:
        """Run with retries: another attempt only for transient failures (stderr or runner error)."""
        s = self.settings
        secrets = self.secrets(inv)
        attempt = 1
        while True:
            run, result = await self.attempt(inv, attempt, secrets)
            if run.ok:
                return Outcome(True, result, attempt, run, secrets)
            final = run.stopped or self.stopping or attempt >= s.max_attempts
            if final or not is_transient((run.stderr, run.error)):
                details = {"exit_code": run.exit_code, "attempts": attempt, "stderr_tail": tail(run.stderr)}
                return Outcome(False, result, attempt, run, secrets, failure_message(run), details)
            await sleep(backoff_seconds(attempt, s.retry_backoff_ms))
            attempt += 1

    async def attempt(
        self, inv: Invocation, attempt: int, secrets: tuple[str, ...]
    ) -> tuple[RunResult, dict[str, Any]]:
        """One attempt in a fresh staging directory, removed afterwards whatever happens."""
        s = self.settings
        name = sandbox_name(s.name_prefix, inv.job_id, inv.agent_id, inv.invocation, attempt)
        small = self._small_uploads(inv.payloads_path) and _small(inv.message.body, SMALL_UPLOADS_BYTES)
        if small:  # a thread hop costs more than the copy and the runtime files
            staging = self._stage(inv, name)
        else:
            staging = await _staged(asyncio.to_thread(self._stage, inv, name))
        try:
            spec = self._spec(inv, staging, name, attempt)
            run = redact_run(await self.runner.run(spec), secrets)
        finally:
            await asyncio.shield(asyncio.to_thread(remove_staging, staging))
        result = result_dict(run, sandbox_name=name, remote_dir=spec.root, node_name=inv.node_name)
        return run, result

    def _small_uploads(self, payloads: Path | None) -> bool:
        """True when every upload is a plain file and together they are under 256 KiB."""
        total = 0
        for upload in self.uploads:
            if payloads is None:
                return False
            try:
                st = (payloads / upload.source).stat()
            except OSError:
                return True  # staging reports the problem
            if not stat.S_ISREG(st.st_mode):
                return False
            total += st.st_size
        return total <= SMALL_UPLOADS_BYTES

    def _stage(self, inv: Invocation, name: str) -> Path:
        """Create the directory, copy uploads, write the runtime files, hand it to the runner."""
        staging = create_staging_dir(inv.temp_dir, self.runner.name, name)
        try:
            limits = self.settings.limits
            budget = StagingBudget.for_limits(limits.workdir_mb, limits.memory_mb)
            stage_uploads(self.uploads, inv.payloads_path, staging, budget)
            workflow = contract.workflow_from_headers(inv.message.headers)
            context = contract.context_document(
                job_id=inv.job_id,
                agent_id=inv.agent_id,
                agent_type=inv.agent_type,
                template_type=inv.template_type,
                agent_state=inv.agent_state,
                workflow=workflow,
            )
            doc = contract.message_document(inv.message, inv.job_id, inv.agent_id)
            contract.write_runtime_files(staging, inv.message, doc, context)
            self.runner.prepare(staging)
        except BaseException:
            remove_staging(staging)
            raise
        return staging

    def _spec(self, inv: Invocation, staging: Path, name: str, attempt: int) -> RunSpec:
        s = self.settings
        root = self.runner.root_for(staging, s.sandbox_root)
        workdir = contract.resolve_workdir(s.workdir, s.sandbox_root, root)
        _check_workdir(workdir, root, staging, s.workdir, verbatim_ok=self.runner.name == "host_local")
        paths = contract.RuntimePaths(root)
        env = contract.contract_env(
            paths,
            message=inv.message,
            agent_type=inv.agent_type,
            template_type=inv.template_type,
            job_id=inv.job_id,
            agent_id=inv.agent_id,
            workdir=workdir,
            workflow=contract.workflow_from_headers(inv.message.headers),
        )
        env.update(s.environment)
        env.update(self._passed_env(inv))
        values = contract.placeholder_values(paths, workdir, inv.job_id, inv.agent_id)
        command = contract.build_command(s.command, values)
        _check_no_nul(env, command, workdir)
        return RunSpec(
            name=name,
            command=command,
            env=env,
            staging_dir=staging,
            root=root,
            workdir=workdir,
            sandbox_root=s.sandbox_root,
            timeout_seconds=s.timeout_seconds,
            max_output_bytes=s.max_output_bytes,
            kill_grace_seconds=s.kill_grace_seconds,
            limits=s.limits,
            network=s.network,
            login_shell=s.login_shell,
            attempt=attempt,
            options=s.raw,
            payloads_path=inv.payloads_path,
            tracker=self.tracker,
        )

    def secrets(self, inv: Invocation) -> tuple[str, ...]:
        """Values this node's runs must never reveal (secret-named ``environment``/``pass_env``)."""
        return secret_values(self.settings.environment, self._passed_env(inv))

    def _passed_env(self, inv: Invocation) -> dict[str, str]:
        """``pass_env``, only the variables the policy lets bundles read (checked at submit too)."""
        names = [name for name in self.settings.pass_env if self.policy.passes(name)]
        return contract.passed_env(names, inv.environ)

    async def stop(self) -> None:
        """Kill every running command (whole process groups) and start no new attempt; idempotent."""
        self.stopping = True
        await self.tracker.stop_all(self.settings.kill_grace_seconds)


def _small(value: Any, limit: int, most_items: int = 4096) -> bool:
    """Whether ``value`` (a message body) is surely under ``limit`` bytes of text: a bounded walk
    that gives up (not small) past ``most_items`` items, so deciding costs little either way."""
    size, seen, pending = 0, 0, [value]
    while pending:
        item = pending.pop()
        seen += 1
        if seen > most_items:
            return False
        if isinstance(item, str | bytes | bytearray):
            size += len(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
            size += sum(len(k) for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            pending.extend(item)
        else:
            size += 8
        if size > limit:
            return False
    return True


def _check_policy(settings: ExecutorSettings, policy: ExecutionPolicy) -> None:
    """What the policy refuses never runs, however the job got here (submitted, recovered, restored).

    Raises:
        RunnerError: naming what was asked for and what refuses it.
    """
    refused = {
        "host_local": settings.runner == "host_local" and not policy.allow_host_local,
        "openshell": settings.runner == "openshell" and not policy.allow_openshell,
        "network": settings.network and settings.runner == "sandbox" and not policy.allow_network,
    }
    for what, no in refused.items():
        if no:
            asked = "network: true" if what == "network" else f'runner "{what}"'
            raise RunnerError(f"this runtime does not allow {asked} for its bundles")


def _check_no_nul(env: Mapping[str, str], command: str, workdir: str) -> None:
    """No program can receive a NUL byte, and in an argument list it would split one value in two.

    Raises:
        RunnerError: naming the variable (from ``environment``, or a message's headers or content type).
    """
    for key, value in env.items():
        if "\0" in key or "\0" in value or "=" in key or not key:
            raise RunnerError(
                f"environment variable {key[:60]!r} has an invalid name or a NUL byte in its value"
            )
    if "\0" in command or "\0" in workdir:
        raise RunnerError("the command or workdir contains a NUL byte")


async def _staged(staging: Awaitable[Path]) -> Path:
    """Await staging in its thread; if we are cancelled meanwhile, remove the directory it makes."""
    task = asyncio.ensure_future(staging)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_remove_when_staged)
        raise


def _remove_when_staged(task: asyncio.Future[Path]) -> None:
    if not task.cancelled() and task.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, remove_staging, task.result())


def _check_workdir(
    workdir: str, root: str, staging: Path, configured: str | None, *, verbatim_ok: bool
) -> None:
    """The cwd must exist before the run: a clear error instead of a shell's ``cd`` failure."""
    if workdir == root or workdir.startswith(root.rstrip("/") + "/"):
        relative = PurePosixPath(workdir).relative_to(root)
        host = staging.joinpath(*relative.parts)
    elif verbatim_ok:
        host = Path(workdir)
    else:
        raise StagingError(f"workdir {workdir} is outside {root}, the only directory the sandbox sees")
    if not host.is_dir():
        shown = configured or workdir
        raise StagingError(f"workdir {shown} does not exist (upload a folder there with upload_as)")
