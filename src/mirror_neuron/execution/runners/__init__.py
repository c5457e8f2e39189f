"""Runners: where an executor's command runs (bubblewrap sandbox, host, OpenShell)."""

from __future__ import annotations

from .base import Runner, RunResult, RunSpec
from .bwrap import BwrapRunner, build_argv, sandbox_available
from .host import HostRunner
from .openshell import OpenShellRunner
from .process import OwnedProcess, ProcessOutput, ProcessTracker, run_owned


def runner_for(kind: str) -> Runner:
    """The runner for a settings ``runner`` kind (``sandbox``, ``host_local``, ``openshell``)."""
    if kind == "host_local":
        return HostRunner()
    if kind == "openshell":
        return OpenShellRunner()
    return BwrapRunner()


__all__ = [
    "BwrapRunner",
    "HostRunner",
    "OpenShellRunner",
    "OwnedProcess",
    "ProcessOutput",
    "ProcessTracker",
    "RunResult",
    "RunSpec",
    "Runner",
    "build_argv",
    "run_owned",
    "runner_for",
    "sandbox_available",
]
