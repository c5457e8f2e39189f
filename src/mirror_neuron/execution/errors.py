"""Typed errors of the execution layer, all :class:`~mirror_neuron.errors.ExecutionError`.

Split by who has to act: the bundle author (:class:`StagingError`, bad uploads or
workdir), the operator (:class:`SandboxUnavailable`, install bubblewrap or opt into the
host runner) and the job's resource budget (:class:`LeaseError`, pools).
"""

from __future__ import annotations

from ..errors import ExecutionError


class StagingError(ExecutionError):
    """Uploads, workdir or runtime files could not be prepared for a run."""


class LeaseError(ExecutionError):
    """An executor pool lease cannot be granted (unknown pool, too many slots)."""


class SandboxUnavailable(ExecutionError):
    """The sandbox runner cannot start on this machine; never silently downgraded."""


class RunnerError(ExecutionError):
    """The configured runner is unknown or cannot run this command."""


__all__ = ["ExecutionError", "LeaseError", "RunnerError", "SandboxUnavailable", "StagingError"]
