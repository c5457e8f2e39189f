"""The asyncio runtime: jobs, agent cells, the run queue and batched persistence.

Modules, lowest first (imports only go down this list): ``mailbox``, ``scheduler``,
``batches``, ``writer``, ``remote``, ``host``, ``cell``, ``job``, ``control``, ``reads``,
``recovery``, ``controller``, ``runtime``.
"""

from __future__ import annotations

from .job import JobRun
from .reads import JobReader, final_agent_views, orphaned
from .remote import live_runtimes
from .runtime import Runtime

__all__ = ["JobReader", "JobRun", "Runtime", "final_agent_views", "live_runtimes", "orphaned"]
