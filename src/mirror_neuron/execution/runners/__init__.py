"""Runners: where an executor's command runs (bubblewrap sandbox, host, OpenShell)."""

from __future__ import annotations

from ...policy import ExecutionPolicy
from .base import Runner, RunResult, RunSpec
from .bwrap import BwrapRunner, build_argv, sandbox_available
from .host import HostRunner
from .netns import network_available
from .openshell import OpenShellRunner
from .process import OwnedProcess, ProcessOutput, ProcessTracker, run_owned


def runner_for(kind: str, policy: ExecutionPolicy | None = None) -> Runner:
    """The runner for a settings ``runner`` kind (``sandbox``, ``host_local``, ``openshell``)."""
    policy = policy or ExecutionPolicy()
    if kind == "host_local":
        return HostRunner()
    if kind == "openshell":
        # The CLI is the operator's program; a bundle may name its own only where it may
        # already run anything on the host (host_local allowed).
        return OpenShellRunner(cli=policy.openshell_bin, bundle_cli=policy.trusts_host)
    return BwrapRunner(network_allow=policy.network_allow, network_deny=policy.network_deny)


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
    "network_available",
    "run_owned",
    "runner_for",
    "sandbox_available",
]
