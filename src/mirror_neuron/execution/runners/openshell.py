"""``openshell``: the original's OpenShell CLI in one-shot mode (§8.8), when asked for explicitly.

``openshell sandbox create --upload <staged>:/sandbox/job … -- bash -lc <wrapper>`` uploads
the staging directory, runs the wrapper and deletes the sandbox (``--no-keep``). The
wrapper exports the contract environment, runs the command with stdout and stderr in
files, and prints them as JSON between result markers, which is how they stay separate
across the CLI. Selected only by ``runner: "openshell"``; it is never a silent fallback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from ... import _json
from ..contract import shell_quote
from ..errors import RunnerError
from .base import RESULT_END, RESULT_START, RunResult, RunSpec, decode, shell_script
from .process import run_owned

_REPORT = "\n".join(
    [
        "import json, sys",
        "def read(path):",
        "    try:",
        "        with open(path, encoding='utf-8', errors='replace') as f:",
        "            return f.read()",
        "    except OSError:",
        "        return ''",
        f"print({RESULT_START!r})",
        "out = {'exit_code': int(sys.argv[1]), 'stdout': read(sys.argv[2]), 'stderr': read(sys.argv[3])}",
        "print(json.dumps(out))",
        f"print({RESULT_END!r})",
    ]
)


def find_cli(
    options: Mapping[str, Any],
    environ: Mapping[str, str],
    configured: str | None = None,
    bundle_cli: bool = False,
) -> str | None:
    """The OpenShell CLI: the runtime's setting (``MIRROR_NEURON_OPENSHELL_BIN``), else ``openshell`` on PATH.

    A bundle's ``sandbox_cli`` names a host program to run, so it counts only with
    ``bundle_cli`` (a runtime that lets bundles run anything on the host anyway).
    """
    name = (options.get("sandbox_cli") if bundle_cli else None) or configured or "openshell"
    return shutil.which(str(name), path=environ.get("PATH"))


def wrapper(spec: RunSpec) -> str:
    """The script run by ``bash -lc`` inside the OpenShell sandbox."""
    out = str(PurePosixPath(spec.root) / "mirror_neuron_stdout.txt")
    err = str(PurePosixPath(spec.root) / "mirror_neuron_stderr.txt")
    lines = [f"export {key}={shell_quote(value)}" for key, value in spec.env.items()]
    lines += [
        f"cd {shell_quote(spec.workdir)} || exit 1",
        f"bash -c {shell_quote(shell_script(spec))} > {shell_quote(out)} 2> {shell_quote(err)}",
        "status=$?",
        f'python3 -c {shell_quote(_REPORT)} "$status" {shell_quote(out)} {shell_quote(err)}',
        'exit "$status"',
    ]
    return "\n".join(lines)


def create_argv(cli: str, spec: RunSpec) -> list[str]:
    """``openshell sandbox create`` for one attempt, flags as the original passes them."""
    opts = spec.options
    argv = [cli, "sandbox", "create", "--name", spec.name, "--upload", f"{spec.staging_dir}:{spec.root}"]
    argv.append("--no-git-ignore")
    if opts.get("no_keep", True):
        argv.append("--no-keep")
    if opts.get("no_auto_providers", True):
        argv.append("--no-auto-providers")
    if opts.get("gpu"):
        argv.append("--gpu")
    for key, flag in (("from", "--from"), ("remote", "--remote"), ("ssh_key", "--ssh-key")):
        if opts.get(key):
            argv += [flag, str(opts[key])]
    if opts.get("policy"):
        policy = str(opts["policy"])
        if not policy.startswith("/") and spec.payloads_path is not None:
            policy = str(spec.payloads_path / policy)
        argv += ["--policy", policy]
    for provider in opts.get("providers") or []:
        argv += ["--provider", str(provider)]
    argv.append("--tty" if opts.get("tty") is True else "--no-tty")
    return [*argv, "--", "bash", "-lc", wrapper(spec)]


def parse_report(text: str) -> tuple[dict[str, Any] | None, str]:
    """The marker block's JSON and the rest of the output (the ``logs``)."""
    start = text.find(RESULT_START)
    end = text.find(RESULT_END, start + 1)
    if start < 0 or end < 0:
        return None, text.strip()
    try:
        report = _json.loads(text[start + len(RESULT_START) : end].strip())
    except _json.JSONDecodeError:
        return None, text.strip()
    logs = (text[:start] + text[end + len(RESULT_END) :]).strip()
    return (report if isinstance(report, dict) else None), logs


class OpenShellRunner:
    """Runs each attempt in a fresh one-shot OpenShell sandbox."""

    name: ClassVar[str] = "openshell"

    def __init__(
        self, environ: Mapping[str, str] | None = None, *, cli: str | None = None, bundle_cli: bool = False
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.cli = cli if cli is not None else self.environ.get("MIRROR_NEURON_OPENSHELL_BIN")
        self.bundle_cli = bundle_cli

    def root_for(self, staging: Path, sandbox_root: str) -> str:
        return sandbox_root

    def prepare(self, staging: Path) -> None:
        return None

    async def run(self, spec: RunSpec) -> RunResult:
        cli = find_cli(spec.options, self.environ, self.cli, self.bundle_cli)
        if cli is None:
            raise RunnerError(
                'runner "openshell" needs the openshell CLI '
                "(MIRROR_NEURON_OPENSHELL_BIN, or openshell on PATH)"
            )
        out = await run_owned(
            create_argv(cli, spec),
            env={**self.environ, "NO_COLOR": "1"},
            time_limit=spec.timeout_seconds,
            max_output_bytes=2 * spec.max_output_bytes + 65536,
            grace=spec.kill_grace_seconds,
            tracker=spec.tracker,
        )
        text, cli_err = decode(out.stdout), decode(out.stderr)
        report, logs = parse_report(text)
        logs = "\n".join(part for part in (logs, cli_err.strip()) if part)
        cap = spec.max_output_bytes
        stdout = str(report.get("stdout", ""))[:cap] if report else ""
        stderr = str(report.get("stderr", ""))[-cap:] if report else ""
        exit_code = _int(report.get("exit_code"), out.returncode) if report else out.returncode
        error = None
        if out.timed_out:
            error = f"command timed out after {spec.timeout_seconds:g}s and was killed"
        elif out.stopped:
            error = "command was stopped because the executor is shutting down"
        result = RunResult(exit_code, out.returncode, stdout, stderr, logs, text, error, out.timed_out)
        result.duration_ms, result.stopped = out.duration_ms, out.stopped
        result.extra.update(runner=self.name, openshell_exit_code=out.returncode)
        if exit_code == 0 and out.returncode != 0:
            result.extra["warning"] = (
                f"openshell exited with status {out.returncode} after the command succeeded"
            )
        return result


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
