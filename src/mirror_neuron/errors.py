"""Exception hierarchy.

Every error the package raises on purpose derives from :class:`MirrorNeuronError`, so
callers can catch one type. Families are split by who has to act: the author of a
bundle (:class:`ManifestError`), the caller naming something that does not exist
(:class:`NotFound`), the job itself (:class:`JobFailed`), or the infrastructure
(:class:`StoreError`). This module is a leaf: it imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class MirrorNeuronError(Exception):
    """Root of every error raised by MirrorNeuron."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(MirrorNeuronError):
    """The runtime's own configuration (environment, flags, files) is invalid."""


class ManifestError(MirrorNeuronError):
    """A job bundle or manifest could not be loaded or is invalid.

    ``errors`` holds *every* problem found (validation collects, it does not stop at
    the first), each a sentence naming the node, edge or field concerned.
    """

    def __init__(self, errors: str | Iterable[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors) or "invalid manifest")


class NotFound(MirrorNeuronError):
    """Something named by the caller does not exist."""


class JobNotFound(NotFound):
    """No job with this id exists in the store."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was not found")
        self.job_id = job_id


class AmbiguousJobId(MirrorNeuronError):
    """A shortened job id matches more than one job."""


class AgentNotFound(NotFound):
    """The job has no agent with this id."""

    def __init__(self, job_id: str, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not part of job {job_id}")
        self.job_id = job_id
        self.agent_id = agent_id


class JobStateError(MirrorNeuronError):
    """The job is in a state that does not allow the requested operation."""

    def __init__(self, job_id: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobOrphaned(JobStateError):
    """The job is not ended but no runtime hosts it any more (its runtime died or suspended it).

    Nothing waits for such a job to end on its own: ``mn job recover <id>`` resumes it.
    """

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(job_id, f"{why}; run `mn job recover {job_id}` to resume it")


class NotHosted(JobStateError):
    """A control call reached a runtime that does not host the job (it moved to another node)."""


class JobStalled(JobStateError):
    """The job cannot progress on its own (no queued mail, no running handler) for too long."""


class MailboxFull(MirrorNeuronError):
    """An external message was refused because the agent's mailbox is at its bound."""

    def __init__(self, job_id: str, agent_id: str, depth: int, bound: int) -> None:
        super().__init__(
            f"mailbox of agent {agent_id} in job {job_id} is full ({depth}/{bound} messages); retry later"
        )
        self.job_id = job_id
        self.agent_id = agent_id
        self.depth = depth
        self.bound = bound


class JobTimeout(MirrorNeuronError):
    """Waiting for a job took longer than the caller allowed."""

    def __init__(self, job_id: str, timeout: float | None) -> None:
        super().__init__(f"timed out waiting for job {job_id} after {timeout:g}s")
        self.job_id = job_id
        self.timeout = timeout


class JobFailed(MirrorNeuronError):
    """Raised by helpers that demand a completed job when it failed instead."""

    def __init__(self, job_id: str, job: dict[str, Any]) -> None:
        result = job.get("result") or {}
        detail = result.get("error") or result.get("reason") or job.get("status")
        super().__init__(f"job {job_id} {job.get('status')}: {detail}")
        self.job_id = job_id
        self.job = job


class MessageError(MirrorNeuronError):
    """A message could not be normalised or encoded."""


class StoreError(MirrorNeuronError):
    """The store could not be opened, read or written."""


class InvalidCursor(MirrorNeuronError):
    """A job-list cursor that no ``list_jobs`` gave out (altered, truncated, or made up)."""


class StoreMissing(StoreError):
    """A store opened with ``create=False`` does not exist (nothing was created)."""

    def __init__(self, location: str) -> None:
        super().__init__(f"no store at {location}")
        self.location = location


class ExecutionError(MirrorNeuronError):
    """An executor could not run its command (setup, sandbox or runner failure)."""


class LeaseLost(StoreError):
    """A write carried a stale lease epoch: another node claimed these jobs since.

    The store wrote nothing of the batch. The runtime drops those jobs' parts, writes the
    rest, and stops the jobs here without writing again (they belong to the new owner).
    """

    def __init__(self, job_ids: Iterable[str]) -> None:
        self.job_ids = sorted(set(job_ids))
        super().__init__(f"lease lost: another node owns job(s) {', '.join(self.job_ids)} now")


class NoEligibleNode(MirrorNeuronError):
    """No live runtime node of the cluster can host a job (its pools, a pin, or no node at all)."""


class Unrecoverable(JobStateError):
    """A job cannot be resumed from the store (its manifest or bundle files are gone or broken)."""
