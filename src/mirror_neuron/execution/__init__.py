"""Running executor commands: the payload contract, staging, sandboxes, pools and retries.

:class:`Executor` runs one node's invocations (stage → run → result, with retries);
:class:`LeaseManager` bounds how many run at once; :func:`sandbox_available` tells
``mn doctor`` whether the default bubblewrap sandbox works; :func:`check_executor_node`
is the validation rule for executor nodes, which :mod:`mirror_neuron.validation` passes
to the bundle validator (nothing is registered on import). Nothing here imports the
runtime, the agents or the CLI.
"""

from __future__ import annotations

from ..policy import Limits
from .errors import ExecutionError, LeaseError, RunnerError, SandboxUnavailable, StagingError
from .execute import Executor, Invocation, Outcome, sandbox_name
from .output import Emit, StructuredOutput, parse_structured
from .pools import Lease, LeaseManager
from .runners import (
    BwrapRunner,
    HostRunner,
    OpenShellRunner,
    Runner,
    RunResult,
    RunSpec,
    network_available,
    sandbox_available,
)
from .settings import ExecutorSettings
from .staging import UnsafeTempDir, ensure_private_dir, process_start, run_dir, sweep_stale_runs
from .validate import check_executor_node

__all__ = [
    "BwrapRunner",
    "Emit",
    "ExecutionError",
    "Executor",
    "ExecutorSettings",
    "HostRunner",
    "Invocation",
    "Lease",
    "LeaseError",
    "LeaseManager",
    "Limits",
    "OpenShellRunner",
    "Outcome",
    "RunResult",
    "RunSpec",
    "Runner",
    "RunnerError",
    "SandboxUnavailable",
    "StagingError",
    "StructuredOutput",
    "UnsafeTempDir",
    "check_executor_node",
    "ensure_private_dir",
    "network_available",
    "parse_structured",
    "process_start",
    "run_dir",
    "sandbox_available",
    "sandbox_name",
    "sweep_stale_runs",
]
