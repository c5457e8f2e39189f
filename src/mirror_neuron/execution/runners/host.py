"""``host_local``: run the command as a plain child of the runtime, for trusted code only.

Like the original HostLocal runner it inherits the runtime's environment (plus the
contract variables) and runs in the staging directory on the host. It still gets its
own process group, a timeout, capped output and, if the node sets ``limits``, rlimits.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from .base import RunResult, RunSpec, from_process, shell_script
from .process import run_owned


@functools.cache
def _die_with_runtime() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL``: the command dies with a runtime killed by -9 (no ``preexec_fn``,
    which is unsafe with threads). Without setpriv the command outlives such a runtime."""
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin")
    return (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()


class HostRunner:
    """No isolation: the command sees the host as the runtime does."""

    name: ClassVar[str] = "host_local"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def root_for(self, staging: Path, sandbox_root: str) -> str:
        return str(staging)

    def prepare(self, staging: Path) -> None:
        return None

    async def run(self, spec: RunSpec) -> RunResult:
        bash = shutil.which("bash", path=self.environ.get("PATH")) or "/bin/bash"
        flag = "-lc" if spec.login_shell else "-c"
        out = await run_owned(
            [*_die_with_runtime(), bash, flag, shell_script(spec)],
            env={**self.environ, **spec.env},
            cwd=spec.workdir,
            time_limit=spec.timeout_seconds,
            max_output_bytes=spec.max_output_bytes,
            grace=spec.kill_grace_seconds,
            tracker=spec.tracker,
        )
        result = from_process(out, spec)
        result.extra["runner"] = self.name
        return result
