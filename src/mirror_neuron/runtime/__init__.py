"""The asyncio runtime: jobs, agent cells, the run queue and batched persistence."""

from __future__ import annotations

from .job import JobRun
from .runtime import Runtime

__all__ = ["JobRun", "Runtime"]
